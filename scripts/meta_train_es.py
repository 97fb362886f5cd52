"""`keras-l2o-meta-train --trainer=pes` / `--trainer=es`: their flags and their run.

Their flags are `trainers.pes.PESConfig`'s fields (`scripts.config_flags`);
`scripts/meta_train.py` builds the two trainers through `es_trainer_factory`.
"""

from absl import app

from . import config_flags
from . import meta_train_resume
from . import trainers_module

ES_TRAINERS = ("pes", "es")


def es_trainer_factory(args, settings, rule, family, strategy, threading):
  """The PES / ES trainer the arguments describe, as a function that builds it.

  Args:
    args: the run's arguments (`meta_train.run_arguments`).
    settings: `meta_train.resolve_settings`'s result.
    rule, family: the rule and the problem family.
    strategy: the `tf.distribute` strategy.
    threading: the thread-pool sizes in use.

  Returns:
    A function of no arguments that builds the trainer; `scripts/meta_train.py`
    calls it once it holds the run directory's lock.

  Raises:
    app.UsageError: for arguments PES / ES cannot run with.
  """
  pes = trainers_module("pes")
  if args.strategy == "parameter_server":
    raise app.UsageError(f"--trainer={args.trainer} runs synchronously (default, mirrored, "
                         "multi_worker or tpu); received --strategy=parameter_server.")
  config = config_flags.config_from_flags(
      pes.PESConfig, vars(args), estimator=args.trainer, num_steps=settings["num_steps"],
      validation_every=settings["validation_every"],
      validation_problems=settings["validation_problems"])
  extra_config = meta_train_resume.recorded_settings(
      args, settings, meta_train_resume.RUN_FLAGS + config_flags.flag_names(pes.PESConfig)
      + meta_train_resume.STRATEGY_FLAGS, threading)
  return lambda: pes.PESTrainer(rule, family, config, args.save_dir, extra_config=extra_config,
                                strategy=strategy)
