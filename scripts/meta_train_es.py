"""`keras-l2o-meta-train --trainer=pes` / `--trainer=es`: their flags and their run.

Kept beside `scripts/meta_train.py`, which defines these flags through
`define_es_flags()` and builds the two trainers through `es_trainer_factory`.
"""

from absl import app
from absl import flags

ES_TRAINERS = ("pes", "es")
# The flags (besides meta_train.py's shared ones) that a PES / ES run records and resumes with.
ES_FLAGS = ("num_pairs", "sigma", "min_horizon", "max_horizon", "validation_horizon",
            "vectorized")
# meta_train.py's flags that a PES / ES run reads.
_SHARED_FLAGS = ("trainer", "rule", "rule_config", "problem", "problem_config", "data_path",
                 "num_steps", "unroll_length", "meta_learning_rate", "meta_clipnorm",
                 "meta_objective", "validation_every", "validation_problems", "patience",
                 "checkpoint_every", "log_every", "learning_rate", "seed", "strategy",
                 "num_cpu_devices")


def define_es_flags():
  """Defines the flags only --trainer=pes / es read."""
  flags.DEFINE_integer("num_pairs", 8, "PES / ES: antithetic particle pairs per meta-step "
                       "(split over the replicas: a multiple of their number).", lower_bound=1)
  flags.DEFINE_float("sigma", 0.01, "PES / ES: standard deviation of the perturbations of the "
                     "meta-parameters.")
  flags.DEFINE_integer("min_horizon", 100, "PES / ES: shortest trajectory (inner steps); "
                       "lengths are log-uniform in [min_horizon, max_horizon].", lower_bound=1)
  flags.DEFINE_integer("max_horizon", 2000, "PES / ES: longest trajectory (inner steps).",
                       lower_bound=1)
  flags.DEFINE_integer("validation_horizon", None, "PES / ES: inner steps of a validation run "
                       "(default: --max_horizon).", lower_bound=1)
  flags.DEFINE_bool("vectorized", True, "PES / ES: run the particles as one vectorised "
                    "computation (False: a loop over them inside the graph; same numbers up to "
                    "rounding, slower).")


def es_trainer_factory(FLAGS, settings, rule, family, strategy, threading):  # pylint: disable=invalid-name
  """The PES / ES trainer the flags describe, as a function that builds it.

  `scripts/meta_train.py` calls the function once it holds the run
  directory's lock. Raises app.UsageError for flags PES / ES cannot run with.
  """
  from trainers import pes  # pylint: disable=g-import-not-at-top
  config = pes.PESConfig(
      estimator=FLAGS.trainer, num_steps=settings["num_steps"],
      unroll_length=FLAGS.unroll_length, min_horizon=FLAGS.min_horizon,
      max_horizon=FLAGS.max_horizon, num_pairs=FLAGS.num_pairs, sigma=FLAGS.sigma,
      meta_learning_rate=FLAGS.meta_learning_rate, meta_clipnorm=FLAGS.meta_clipnorm or None,
      meta_objective=FLAGS.meta_objective, validation_every=settings["validation_every"],
      validation_problems=settings["validation_problems"],
      validation_horizon=FLAGS.validation_horizon, patience=FLAGS.patience,
      checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every,
      learning_rate=FLAGS.learning_rate, seed=FLAGS.seed, vectorized=FLAGS.vectorized)
  if FLAGS.strategy == "parameter_server":
    raise app.UsageError(f"--trainer={FLAGS.trainer} runs synchronously (default, mirrored, "
                         "multi_worker or tpu); received --strategy=parameter_server.")
  flag_values = {name: FLAGS[name].value for name in _SHARED_FLAGS + ES_FLAGS}
  flag_values.update(threading, problem_config=settings["problem_config"],
                     num_steps=settings["num_steps"])
  extra_config = {"settings": flag_values,
                  "problem": {"name": FLAGS.problem, "config": settings["problem_config"]}}
  return lambda: pes.PESTrainer(rule, family, config, FLAGS.save_dir, extra_config=extra_config,
                                strategy=strategy)
