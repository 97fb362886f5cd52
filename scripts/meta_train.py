r"""Meta-trains a learned optimizer.

Usage:
  keras-l2o-meta-train --trainer=bptt --rule=lstm --problem=quadratic --save_dir=/tmp/l2l_quad
  keras-l2o-meta-train --trainer=bptt --rule=lstm --problem=mnist_mlp --save_dir=/tmp/l2l_mnist
  keras-l2o-meta-train --save_dir=/tmp/l2l_quad --resume      # continue a stopped / killed run
  keras-l2o-meta-train --trainer=gps --problem=logistic_regression --save_dir=/tmp/gps_logreg
  keras-l2o-meta-train --trainer=gps --rule=gps_policy --problem=logistic_regression \
      --save_dir=/tmp/p1
  keras-l2o-meta-train --trainer=gps --problem=mnist_mlp --save_dir=/tmp/gps_mnist

Unset flags take the defaults of the chosen problem (see `PROBLEM_DEFAULTS`).
The run directory gets `config.json`, `metrics.jsonl`, `checkpoints/`,
`tensorboard/`, and the `final/` and `best/` optimizers, which
`keras_l2o.load(save_dir)` / `keras_l2o.load(save_dir, which="best")` return.
A GPS run's `final/` is its best validated iteration (`restore_best`; turn it off
with `--gps_config='{"restore_best": false}'`), and its last iteration is in `last/`.

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
from . import meta_train_defaults
from . import meta_train_es
from . import meta_train_resume
from . import strategy_flags
from . import trainers_module

TRAINERS = ("bptt", "gps") + meta_train_es.ES_TRAINERS
GPS_RULES = ("gps_policy", "gps_lstm", "gps_general")

PROBLEM_DEFAULTS = meta_train_defaults.PROBLEM_DEFAULTS


RUN_FLAGS = meta_train_resume.RUN_FLAGS
STRATEGY_FLAGS = meta_train_resume.STRATEGY_FLAGS
# The arguments a GPS run reads (its other settings are --gps_config's).
GPS_SETTINGS = ("trainer", "rule_config", "problem", "data_path", "horizon", "validation_every",
                "validation_problems", "learning_rate", "seed", "gps_config")


def _config_classes():
  bptt = trainers_module("bptt")
  pes = trainers_module("pes")
  return bptt.BPTTConfig, pes.PESConfig


def define_flags():
  """Defines this script's flags: its own, and one per trainer configuration field."""
  flags.DEFINE_string("trainer", "bptt", f"Meta-training method: {', '.join(TRAINERS)}.")
  flags.DEFINE_string("rule", None, "Rule to meta-train (see keras_l2o.rules.names()); default: "
                      "lstm, and with --trainer=gps gps_lstm (any problem, by coordinate "
                      "groups); --trainer=gps also trains gps_general (likewise) and gps_policy "
                      "(Li & Malik's P1: one flat full-batch problem).")
  flags.DEFINE_string("rule_config", "{}", "JSON object of rule configuration.")
  flags.DEFINE_string("problem", "quadratic", "Problem family (see keras_l2o.problems.names()); "
                      "a comma list meta-trains across several (a mixture).")
  flags.DEFINE_string("problem_config", None, "JSON object of problem-family configuration "
                      "(default: the problem's defaults); for a mixture, an object mapping "
                      "component names to their configs.")
  flags.DEFINE_string("data_path", None, "A local dataset file for data-based problems (e.g. a "
                      "full MNIST .npz, CIFAR batches).")
  for config_class in _config_classes():
    config_flags.define_config_flags(config_class)
  flags.DEFINE_string("save_dir", None, "Run directory (required).")
  flags.DEFINE_bool("resume", False, "Continue the run in --save_dir from its last checkpoint.")
  flags.DEFINE_string("gps_config", "{}", "With --trainer=gps: JSON object of further "
                      "trainers.gps.trainer.GPSConfig fields (e.g. num_conditions), or "
                      "trainers.gps.group_trainer.GroupGPSConfig fields with --rule=gps_lstm or "
                      "gps_general.")
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


define_flags()
FLAGS = flags.FLAGS


def run_arguments(saved=None) -> types.SimpleNamespace:
  """The run's arguments: the flags' values; for `--resume`, the saved ones of flags not given.

  FLAGS are left as parsed. Names: this script's flags, every trainer
  configuration field's flag and the strategy's.
  """
  names = RUN_FLAGS + tuple(dict.fromkeys(
      n for c in _config_classes() for n in config_flags.flag_names(c))) + (
          "gps_config", "intra_op_threads", "inter_op_threads", "save_dir", "resume",
          *STRATEGY_FLAGS)
  values = {name: FLAGS[name].value for name in names}
  if saved is not None:
    values.update(meta_train_resume.saved_values(saved, names))
  return types.SimpleNamespace(**values)


def _json_flag(args, name):
  value = getattr(args, name)
  if value is None:
    return None
  try:
    parsed = json.loads(value)
  except json.JSONDecodeError as e:
    raise app.UsageError(f"--{name} is not valid JSON ({e}). Received: {value!r}") from e
  if not isinstance(parsed, dict):
    raise app.UsageError(f"--{name} must be a JSON object. Received: {value!r}")
  return parsed


def resolve_settings(args) -> dict:
  """Validates the run's arguments (`run_arguments`) and fills per-problem defaults.

  Raises:
    app.UsageError: an argument names nothing that exists or cannot be used.
  """
  import keras_l2o  # pylint: disable=g-import-not-at-top
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  if args.trainer not in TRAINERS:
    raise app.UsageError(f"--trainer={args.trainer!r} is not available. Valid trainers: "
                         f"{', '.join(TRAINERS)}.")
  rule_name = args.rule or ("gps_lstm" if args.trainer == "gps" else "lstm")
  if rule_name not in keras_l2o.rules.names():
    raise app.UsageError(f"--rule={rule_name!r} is not a rule. Valid rules: "
                         f"{', '.join(keras_l2o.rules.names())}.")
  if args.trainer == "gps" and rule_name not in GPS_RULES:
    raise app.UsageError(f"--trainer=gps meta-trains --rule=gps_policy, gps_lstm or gps_general; "
                         f"received --rule={rule_name!r}.")
  names = [n.strip() for n in args.problem.split(",") if n.strip()]
  unknown = [n for n in names if n not in problems.names()]
  if not names or unknown:
    raise app.UsageError(f"--problem={args.problem!r}: {unknown or 'empty'} is not a problem. "
                         f"Valid problems: {', '.join(problems.names())} (a comma list trains "
                         "across several).")
  given = _json_flag(args, "problem_config")
  configs = {}
  for name in names:
    if len(names) == 1:
      config = dict(given) if given is not None else dict(
          meta_train_defaults.problem_default(name, args.trainer, "problem_config", {}))
    else:  # a mixture: --problem_config maps component names to their configs
      config = dict(meta_train_defaults.problem_default(name, None, "problem_config", {}))
      config.update((given or {}).get(name, {}))
    if args.data_path:
      config["data_path"] = args.data_path
    config.setdefault("seed", args.seed)
    configs[name] = config
  problem_config = configs[names[0]] if len(names) == 1 else configs
  settings = {"rule": rule_name, "rule_config": _json_flag(args, "rule_config"),
              "problem": args.problem, "problem_config": problem_config}
  for name in ("num_steps", "validation_every", "validation_problems"):
    value = getattr(args, name)
    settings[name] = value if value is not None else max(
        meta_train_defaults.problem_default(n, args.trainer, name, 1) for n in names)
  try:
    components = [problems.get(n, **configs[n]) for n in names]
    if rule_name == "gps_policy" and args.trainer == "gps" and (
        len(components) > 1 or not getattr(components[0], "full_batch", False)):
      full_batch = [n for n in problems.names() if getattr(problems.get(n), "full_batch", False)]
      raise app.UsageError(f"--trainer=gps needs one full-batch problem whose parameters are one "
                           f"flat vector ({', '.join(full_batch)}); received "
                           f"--problem={args.problem!r} (--rule=gps_lstm trains on any one "
                           "problem family).")
    if args.trainer == "gps" and len(components) > 1:
      raise app.UsageError(f"--trainer=gps trains on one problem family; received "
                           f"--problem={args.problem!r}.")
    if rule_name == "gps_policy" and len(components) == 1:
      # The policy sees the problem's whole flat parameter vector: size it to fit.
      settings["rule_config"].setdefault("dimension", components[0].num_parameters())
    rule = keras_l2o.rules.get(rule_name, **settings["rule_config"])
  except (ValueError, TypeError) as e:
    context = (f"--rule=gps_policy with rule_config {settings['rule_config']} (the dimension is "
               f"the problem's parameter count): " if rule_name == "gps_policy" else "")
    raise app.UsageError(context + str(e)) from e
  family = components[0] if len(components) == 1 else problems.MixtureFamily(components,
                                                                             seed=args.seed)
  if not rule.is_learned:
    raise app.UsageError(f"--rule={rule_name!r} is hand-designed: it has no meta-parameters "
                         "to train. Learned rules: "
                         f"{', '.join(n for n in keras_l2o.rules.names() if keras_l2o.rules.get(n).is_learned)}.")
  settings["horizon"] = args.horizon or family.default_horizon
  settings["objects"] = (rule, family)
  return settings


def threading_settings(saved=None) -> dict:
  """`intra_op_threads` and `inter_op_threads` for this run.

  The flags when given; for `--resume`, the resumed run's saved values
  (`saved`, its settings, so it continues with the numbers it started with);
  else the problem's default (`PROBLEM_DEFAULTS[problem][trainer]`, shared by
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


def _run_gps(args, settings, rule, family, threading) -> dict:
  """Builds and runs the GPS trainer from the flags; raises app.UsageError."""
  group_trainer = trainers_module("gps.group_trainer")
  gps_trainer = trainers_module("gps.trainer")
  groups = settings["rule"] != "gps_policy"  # gps_lstm and gps_general: coordinate groups
  config_class = group_trainer.GroupGPSConfig if groups else gps_trainer.GPSConfig
  trainer_class = group_trainer.GroupGPSTrainer if groups else gps_trainer.GPSTrainer
  if args.strategy != "default":
    raise app.UsageError(f"--trainer=gps runs on one device; received --strategy="
                         f"{args.strategy!r} (use the default).")
  fields = {"iterations": settings["num_steps"], "horizon": settings["horizon"],
            "validation_every": settings["validation_every"],
            "validation_problems": settings["validation_problems"],
            "learning_rate": args.learning_rate, "seed": args.seed}
  extra = _json_flag(args, "gps_config")
  for name, value in meta_train_defaults.problem_default(args.problem, "gps", "gps_config",
                                                         {}).items():
    extra.setdefault(name, value)
  clash = sorted(set(extra) & set(fields))
  if clash:
    raise app.UsageError(f"--gps_config sets {clash}; use the flags --num_steps (iterations), "
                         "--horizon, --validation_every, --validation_problems, --learning_rate "
                         "and --seed for these.")
  try:
    config = config_class(**extra, **fields)
    config.validate()
    extra_config = meta_train_resume.recorded_settings(args, settings, GPS_SETTINGS, threading)
  except (TypeError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  return build_and_run(lambda: trainer_class(rule, family, config, FLAGS.save_dir,
                                             extra_config=extra_config))


def _bptt_factory(args, settings, rule, family, strategy, threading):
  """The BPTT trainer the arguments describe, as a function that builds it."""
  bptt = trainers_module("bptt")
  try:
    config = config_flags.config_from_flags(
        bptt.BPTTConfig, vars(args), num_steps=settings["num_steps"],
        horizon=settings["horizon"], validation_every=settings["validation_every"],
        validation_problems=settings["validation_problems"])
    config.validate()
  except (TypeError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  extra_config = meta_train_resume.recorded_settings(
      args, settings, RUN_FLAGS + config_flags.flag_names(bptt.BPTTConfig) + STRATEGY_FLAGS,
      threading)
  trainer_class = bptt.BPTTTrainer
  if args.strategy == "parameter_server":
    bptt_async = trainers_module("bptt_async")
    trainer_class = bptt_async.AsyncBPTTTrainer
  return lambda: trainer_class(rule, family, config, args.save_dir, extra_config=extra_config,
                               strategy=strategy)


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
  if args.trainer == "gps":
    result = _run_gps(args, settings, rule, family, threading)
  else:
    factory = (meta_train_es.es_trainer_factory if args.trainer in meta_train_es.ES_TRAINERS
               else _bptt_factory)
    result = build_and_run(factory(args, settings, rule, family, strategy, threading),
                           lock=chief)
  logging.info("Finished: %s", result)
  print(json.dumps(result))


def run():
  """Console-script entry point."""
  cli.run(main, "keras-l2o-meta-train")


if __name__ == "__main__":
  run()
