r"""Meta-trains a learned optimizer.

Usage:
  keras-l2o-meta-train --trainer=bptt --rule=lstm --problem=quadratic --save_dir=/tmp/l2l_quad
  keras-l2o-meta-train --trainer=bptt --rule=lstm --problem=mnist_mlp --save_dir=/tmp/l2l_mnist
  keras-l2o-meta-train --save_dir=/tmp/l2l_quad --resume      # continue a stopped / killed run
  keras-l2o-meta-train --trainer=gps --problem=logistic_regression --save_dir=/tmp/gps_logreg
  keras-l2o-meta-train --trainer=gps --rule=gps_policy --problem=logistic_regression \
      --save_dir=/tmp/p1
  keras-l2o-meta-train --trainer=gps --problem=mnist_mlp --save_dir=/tmp/gps_mnist

The trainers are `trainers.registry`'s; their flags are their configuration's
fields (`scripts.config_flags`). Unset flags take the defaults of the chosen
problem (`ProblemFamily.meta_train_defaults`), else the trainer configuration's.
The run directory gets `config.json`, `metrics.jsonl`, `checkpoints/`,
`tensorboard/`, and the `final/` and `best/` optimizers, which
`keras_l2o.load(save_dir)` / `keras_l2o.load(save_dir, which="best")` return.
A GPS run's `final/` is its best validated iteration (`restore_best`; turn it off
with `--norestore_best`), and its last iteration is in `last/`.

With --trainer=gps the rule defaults to `gps_lstm`, the coordinatewise policy that
coordinate-group GPS trains on any problem (logistic regression: about 2 minutes on
2 cores). `--rule=gps_policy` trains Li & Malik's P1 policy on one flat full-batch
problem (logistic regression: about 33 minutes); docs/RESULTS.md compares the two.
"""

import json
import os
import types

from absl import app
from absl import flags
from absl import logging

from keras_l2o import run_directory
from keras_l2o import run_lock
from . import cli
from . import config_flags
from . import meta_train_build
from . import meta_train_defaults
from . import meta_train_resume
from . import meta_train_settings
from . import strategy_flags
from . import trainers_module

RUN_FLAGS = meta_train_resume.RUN_FLAGS
STRATEGY_FLAGS = meta_train_resume.STRATEGY_FLAGS


def _registry():
  registry = trainers_module("registry")
  return registry


def _json_flags() -> tuple:
  """The trainers' JSON flags of further configuration fields (e.g. `gps_config`)."""
  registry = _registry()
  return tuple(dict.fromkeys(registry.get(n).json_flag for n in registry.names()
                             if registry.get(n).json_flag))


def define_flags():
  """Defines this script's flags: its own, and one per trainer configuration field."""
  registry = _registry()
  flags.DEFINE_string("trainer", "bptt", f"Meta-training method: {', '.join(registry.names())}.")
  flags.DEFINE_string("rule", None, "Rule to meta-train (see keras_l2o.rules.names()); default: "
                      "the trainer's (lstm; with --trainer=gps gps_lstm, any problem, by "
                      "coordinate groups); --trainer=gps also trains gps_general (likewise) and "
                      "gps_policy (Li & Malik's P1: one flat full-batch problem).")
  flags.DEFINE_string("rule_config", "{}", "JSON object of rule configuration.")
  flags.DEFINE_string("problem", "quadratic", "Problem family (see keras_l2o.problems.names()); "
                      "a comma list meta-trains across several (a mixture).")
  flags.DEFINE_string("problem_config", None, "JSON object of problem-family configuration "
                      "(default: the problem's defaults); for a mixture, an object mapping "
                      "component names to their configs.")
  flags.DEFINE_string("init_from", None, "Start from these meta-parameters instead of the rule's "
                      "initialisation: pretrained:NAME, a meta-training directory (its final "
                      "result) or an export; its rule and configuration must be --rule's (e.g. "
                      "BPTT on short truncations first, then PES from its result).")
  flags.DEFINE_string("data_path", None, "A local dataset file for data-based problems (e.g. a "
                      "full MNIST .npz, CIFAR batches).")
  for config_class in registry.config_classes():
    config_flags.define_config_flags(config_class)
  flags.DEFINE_string("save_dir", None, "Run directory (required).")
  flags.DEFINE_bool("resume", False, "Continue the run in --save_dir from its last checkpoint.")
  for name in registry.names():  # a trainer's JSON flag of further configuration fields
    spec = registry.get(name)
    if spec.json_flag and spec.json_flag not in FLAGS:
      classes = " or ".join(c.__name__ for c in spec.config_classes())
      flags.DEFINE_string(spec.json_flag, "{}", f"With --trainer={name}: JSON object of further "
                          f"{classes} fields (e.g. momentum_rates); each field of a number, "
                          "bool or string is also its own flag.")
  flags.DEFINE_integer("intra_op_threads", None, "Threads inside one TensorFlow op "
                       "(tf.config.threading; 0: TensorFlow's choice). Default: the problem's "
                       "(1 for quadratic and mnist_mlp with --trainer=bptt), else 0.",
                       lower_bound=0)
  flags.DEFINE_integer("inter_op_threads", None, "TensorFlow ops run at the same time (0: "
                       "TensorFlow's choice). Default: the problem's, else 0.", lower_bound=0)
  strategy_flags.define_strategy_flags()
  flags.mark_flag_as_required("save_dir")
  flags.register_validator("save_dir", lambda value: value is None or bool(value.strip()),
                           "--save_dir must name a directory. Received: an empty string")


FLAGS = flags.FLAGS
define_flags()


def run_arguments(saved=None) -> types.SimpleNamespace:
  """The run's arguments: the flags' values; for `--resume`, the saved ones of flags not given.

  FLAGS are left as parsed. Names: this script's flags, every trainer
  configuration field's flag and the strategy's.
  """
  names = RUN_FLAGS + tuple(dict.fromkeys(
      n for c in _registry().config_classes() for n in config_flags.flag_names(c))) + (
          *_json_flags(), "intra_op_threads", "inter_op_threads", "save_dir", "resume",
          *STRATEGY_FLAGS)
  values = {name: FLAGS[name].value for name in names}
  if saved is not None:
    values.update(meta_train_resume.saved_values(saved, names))
  return types.SimpleNamespace(**values)


resolve_settings = meta_train_settings.resolve_settings


def threading_settings(saved=None) -> dict:
  """`intra_op_threads` and `inter_op_threads` for this run.

  The flags when given; for `--resume`, the resumed run's saved values
  (`saved`, its settings, so it continues with the numbers it started with);
  else the problem's default for the trainer (`meta_train_defaults.threads`), shared by
  every component of a mixture, else 0: TensorFlow's choice). Reads only flags
  and JSON: call it before TensorFlow runs anything.
  """
  saved = saved or {}
  problem = FLAGS.problem if FLAGS["problem"].present else saved.get("problem", FLAGS.problem)
  trainer = FLAGS.trainer if FLAGS["trainer"].present else saved.get("trainer", FLAGS.trainer)
  values = {}
  for name in ("intra_op_threads", "inter_op_threads"):
    if FLAGS[name].value is not None:
      values[name] = FLAGS[name].value
    elif saved.get(name) is not None:
      values[name] = saved[name]
    else:
      values[name] = meta_train_defaults.threads(problem, trainer)[name]
  return values


check_save_dir = meta_train_resume.check_save_dir


def build_and_run(make_trainer, lock: bool = True) -> dict:
  """Takes the run directory's lock, builds the trainer and runs it; the lock ends with it.

  `lock=False` (a non-chief worker, which writes no run directory) only
  builds and runs.

  Raises:
    app.UsageError: another process holds the lock, `--save_dir` cannot be
      written, a run appeared in it meanwhile, the trainer refuses its
      arguments, or the run directory cannot be resumed (damaged files).
  """
  if not lock:
    return make_trainer().run()
  try:
    run_lock.acquire(FLAGS.save_dir)
  except run_lock.RunLockedError as e:
    raise app.UsageError(str(e)) from None
  except OSError as e:
    raise app.UsageError(f"--save_dir={FLAGS.save_dir} cannot be written: "
                         f"{e.strerror or e}.") from None
  try:
    check_save_dir(FLAGS.save_dir, FLAGS.resume)  # again, now that no other process can write
    try:
      trainer = make_trainer()
    except (TypeError, ValueError) as e:
      raise app.UsageError(str(e)) from e
    try:
      return trainer.run()
    except run_directory.RunDirectoryError as e:
      raise app.UsageError(str(e)) from None
  finally:
    run_lock.release(FLAGS.save_dir)


def main(argv):
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)  # SavedModel chatter
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if strategy_flags.server_role() != "chief":
    strategy_flags.serve_forever()  # a parameter-server cluster's worker or ps: serve only
    return
  saved = None
  if FLAGS.resume:  # before TensorFlow starts: the saved thread pools are set first
    meta_train_resume.check_save_dir(FLAGS.save_dir, resume=True)
    saved = meta_train_resume.saved_settings(FLAGS.save_dir)
    meta_train_resume.check_conflicts(FLAGS.save_dir, saved)
  elif os.path.exists(FLAGS.save_dir) and not os.path.isdir(FLAGS.save_dir):
    raise app.UsageError(f"--save_dir={FLAGS.save_dir} is a file, not a directory.")
  args = run_arguments(saved)
  threading = meta_train_defaults.apply_threads(threading_settings(saved))
  logging.info("TensorFlow threads: %d inside an op, %d ops at a time (0: TensorFlow's choice).",
               threading["intra_op_threads"], threading["inter_op_threads"])
  try:  # first: it may split the CPU or join a cluster before TensorFlow initialises
    strategy = strategy_flags.strategy_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  trainers_base = trainers_module("base")
  chief = trainers_base.is_chief(strategy)
  if chief:  # (other workers write nothing in --save_dir; they follow the chief's run)
    check_save_dir(FLAGS.save_dir, FLAGS.resume)
  if saved is not None:
    logging.info("Resuming the run in %s with its saved settings.", FLAGS.save_dir)
  settings = resolve_settings(args)
  rule, family = settings.pop("objects")
  factory = meta_train_build.trainer_factory(args, settings, rule, family, strategy, threading)
  result = build_and_run(factory, lock=chief)
  logging.info("Finished: %s", result)
  print(json.dumps(result))


def run():
  """Console-script entry point."""
  cli.run(main, "keras-l2o-meta-train")


if __name__ == "__main__":
  run()
