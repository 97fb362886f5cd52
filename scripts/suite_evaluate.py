r"""`keras-l2o-evaluate --suite=general`: the held-out task suite against today's baselines.

Usage:
  keras-l2o-evaluate --suite=general --quick \
      --optimizers=pretrained:l2o-mlp-general --output_dir=/tmp/suite_quick

Every optimizer trains every suite task through `model.fit` (see
`keras_l2o.suite`). `--optimizers` lists the learned optimizers
(`pretrained:NAME`, a meta-training directory or an export; default: every
shipped pretrained optimizer); an entry ending in `+cosine` runs on the warm-up +
cosine schedule over each task's horizon, peaking at its own learning rate, as
`keras_l2o.pretrained.get(NAME, num_training_steps=...)` gives it. The baselines
of `--suite_baselines` are always added. Finished runs are stored under `--output_dir/runs` and reused: rerun the
same command to continue after a crash; `--suite_report_only` reports the runs
stored so far. Writes `results.json`, `report.md`, `plots/TASK.png` and
`plots/summary.png` to `--output_dir`.
"""

import os

from absl import app
from absl import flags
from absl import logging

SUITES = ("general",)
# A learned --optimizers entry with this suffix runs on the schedule of a known run length.
SCHEDULED = "+cosine"


def define_flags():
  """Defines the suite's flags (on top of `scripts.evaluate`'s)."""
  flags.DEFINE_enum("suite", None, SUITES, "Evaluate on a task suite instead of --problem.")
  flags.DEFINE_bool("quick", False, "Suite: one test seed and 3-point learning-rate grids.")
  flags.DEFINE_string("suite_tasks", None, "Suite: comma list of tasks (default: all).")
  flags.DEFINE_string("suite_baselines", "adam@1e-3,adamw,muon,schedule_free_adamw,adam",
                      "Suite: comma list of baselines (empty: none).")
  flags.DEFINE_integer("suite_seeds", None, "Suite: test seeds 0..N-1 (default 3; 1 with --quick).")
  flags.DEFINE_integer("suite_threads", 1, "Suite: TensorFlow intra- and inter-op threads. The "
                       "numbers depend on it (oneDNN convolutions sum by thread); stored runs "
                       "made with another value are rerun.")
  flags.DEFINE_bool("suite_report_only", False, "Suite: train nothing; report the stored runs "
                    "(tasks with a run not stored yet are left out).")


def _learned_factory(item):
  """`factory() -> fresh optimizer` for a learned-optimizer entry; raises app.UsageError."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  if item.startswith("pretrained:"):
    name = item.split(":", 1)[1]
    if name not in keras_l2o.pretrained.names():
      raise app.UsageError(f"--optimizers entry {item!r}: NAME must be one of "
                           f"{', '.join(keras_l2o.pretrained.names())}.")
    return lambda: keras_l2o.pretrained.get(name)
  if os.path.exists(item):
    try:
      keras_l2o.load(item)
    except ValueError as e:
      raise app.UsageError(f"--optimizers entry {item!r}: {e}") from e
    return lambda: keras_l2o.load(item)
  raise app.UsageError(f"--optimizers entry {item!r} is neither pretrained:NAME (NAME in: "
                       f"{', '.join(keras_l2o.pretrained.names())}), an existing meta-training "
                       "directory or export, nor a suite baseline (see --suite_baselines).")


def choices_from_flags(flag_values) -> list:
  """The optimizers to compare: learned ones from --optimizers, then the baselines."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  from keras_l2o.suite import optimizers  # pylint: disable=g-import-not-at-top
  if flag_values["optimizers"].present:
    learned = [i.strip() for i in flag_values.optimizers.split(",") if i.strip()]
  else:
    learned = [f"pretrained:{n}" for n in keras_l2o.pretrained.names()]
  baselines = [b.strip() for b in (flag_values.suite_baselines or "").split(",") if b.strip()]
  baselines += [i for i in learned if i in optimizers.BASELINES and i not in baselines]
  learned = [i for i in learned if i not in optimizers.BASELINES]
  if len(set(learned)) != len(learned):
    raise app.UsageError(f"--optimizers lists an optimizer twice: {learned}")
  choices = [optimizers.learned(item, _learned_factory(item.removesuffix(SCHEDULED)),
                                on_schedule=item.endswith(SCHEDULED)) for item in learned]
  for name in baselines:
    try:
      choices.append(optimizers.baseline(name, quick=flag_values.quick))
    except ValueError as e:
      raise app.UsageError(f"--suite_baselines: {e}") from e
  if not choices:
    raise app.UsageError("No optimizers to evaluate: --optimizers and --suite_baselines are empty.")
  return choices


def main(flag_values):
  """Runs the suite evaluation described by the flags; returns the paths written."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from keras_l2o import suite  # pylint: disable=g-import-not-at-top
  if not flag_values.output_dir:
    raise app.UsageError("--output_dir is required.")
  try:
    tf.config.threading.set_intra_op_parallelism_threads(flag_values.suite_threads)
    tf.config.threading.set_inter_op_parallelism_threads(flag_values.suite_threads)
  except RuntimeError as e:  # TensorFlow already ran in this process (e.g. a test)
    logging.warning("--suite_threads=%d not applied: %s", flag_values.suite_threads, e)
  task_names = suite.names()
  if flag_values.suite_tasks:
    task_names = [t.strip() for t in flag_values.suite_tasks.split(",") if t.strip()]
    unknown = [t for t in task_names if t not in suite.names()]
    if unknown:
      raise app.UsageError(f"--suite_tasks: unknown {unknown}. Valid tasks: "
                           f"{', '.join(suite.names())}.")
  num_seeds = flag_values.suite_seeds or (1 if flag_values.quick else len(suite.TEST_SEEDS))
  if num_seeds < 1:
    raise app.UsageError(f"--suite_seeds must be a positive integer. Received: {num_seeds}")
  seeds = tuple(range(num_seeds))
  choices = choices_from_flags(flag_values)
  total = suite.count_runs(task_names, choices, seeds)
  logging.info("Suite %s: %d tasks x %d optimizers, test seeds %s: %d runs (finished ones "
               "are reused from %s)", flag_values.suite, len(task_names), len(choices), seeds,
               total, flag_values.output_dir)
  environment = suite.environment.describe()  # after the thread settings: it records them
  store = suite.RunStore(flag_values.output_dir, environment=environment)
  if flag_values.suite_report_only:
    results = suite.evaluate_suite(task_names, choices, store, seeds, run_fn=suite.stored_only)
  else:
    results = suite.evaluate_suite(task_names, choices, store, seeds,
                                   progress=keras.utils.Progbar(total, unit_name="run"))
  if not results:
    raise app.UsageError(f"No task has all its runs stored in {flag_values.output_dir!r} yet.")
  protocol = suite.protocol_description(choices, seeds, quick=flag_values.quick,
                                        environment=environment)
  paths = suite.write_report(results, protocol, flag_values.output_dir)
  logging.info("Wrote %s", paths)
  return paths
