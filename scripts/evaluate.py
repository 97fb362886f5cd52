r"""Evaluates learned optimizers against tuned hand-designed baselines on held-out problems.

Usage:
  keras-l2o-evaluate --problem=quadratic \
      --optimizers=/tmp/l2l_quad,pretrained:l2l-quadratic,sgd,momentum,nag,rmsprop,adam \
      --num_problems=100 --output_dir=/tmp/eval_quad

`--optimizers` entries: a meta-training directory, a SavedModel export,
`pretrained:NAME`, or a baseline (`sgd`, `momentum`, `nag`, `rmsprop`, `adam`, `adagrad`),
whose learning rate is tuned on validation problems unless given as `adam@0.01`.
Problems with a full-batch objective (quadratic and the Li & Malik families
logistic_regression, robust_linear_regression, two_layer_net) also take `cg`
and `lbfgs`: scipy's conjugate gradient and L-BFGS-B, which have no learning
rate (e.g. `--problem=logistic_regression --optimizers=cg,lbfgs,sgd,momentum,adam`).
Writes `results.json`, `report.md` and `curves.png` to `--output_dir` and prints
the table.

`--suite=general` evaluates on the held-out Keras task suite instead (see
scripts/suite_evaluate.py).
"""

import json
import math
import os

from absl import app
from absl import flags
from absl import logging

from . import cli
from . import strategy_flags
from . import suite_evaluate

RESULT_FILES = ("results.json", "report.md", "curves.png")


def define_flags():
  """Defines this script's flags."""
  flags.DEFINE_string("problem", "quadratic", "Problem family (see keras_l2o.problems.names()).")
  flags.DEFINE_string("problem_config", "{}", "JSON object of problem-family configuration.")
  flags.DEFINE_string("data_path", None, "A local dataset file for data-based problems.")
  flags.DEFINE_string("optimizers", "sgd,momentum,nag,rmsprop,adam",
                      "Comma list of optimizers (see the module docstring).")
  flags.DEFINE_integer("num_problems", 100, "Held-out test problems.", lower_bound=1)
  flags.DEFINE_integer("horizon", None, "Steps per problem (default: the problem's horizon).",
                       lower_bound=1)
  flags.DEFINE_string("output_dir", None, "Where to write results.json, report.md, curves.png.")
  flags.DEFINE_bool("overwrite", False, "Replace the results already in --output_dir.")
  flags.DEFINE_integer("seed", 0, "Seed of the problem family.")
  flags.DEFINE_integer("tuning_problems", 10, "Validation problems for learning-rate tuning.",
                       lower_bound=1)
  flags.DEFINE_string("grid", None, "Comma list of learning rates to tune over (default: 1e-4 "
                      "to 10, four per decade).")
  flags.DEFINE_integer("speedup_horizon_factor", 5, "Tuned Adam runs this many horizons to "
                       "measure speed-ups.", lower_bound=1)
  flags.mark_flag_as_required("output_dir")
  flags.DEFINE_string("title", None, "Title of the report and plot.")


define_flags()
suite_evaluate.define_flags()
strategy_flags.define_strategy_flags()
FLAGS = flags.FLAGS


def parse_optimizers(text: str) -> list:
  """Turns the `--optimizers` list into `OptimizerSpec`s; raises app.UsageError."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  specs = []
  items = [item.strip() for item in text.split(",") if item.strip()]
  if not items:
    raise app.UsageError("--optimizers is empty.")
  if len(set(items)) != len(items):
    raise app.UsageError(f"--optimizers lists an optimizer twice: {items}")
  for item in items:
    name, _, rate = item.partition("@")
    if name in evaluation.BASELINES:
      lr = cli.finite_positive(rate, f"--optimizers entry {item!r}") if rate else None
      spec = evaluation.baseline(name, lr)
      spec.name = item
    elif name in evaluation.SCIPY_BASELINES:
      if rate:
        raise app.UsageError(f"--optimizers entry {item!r}: {name} (scipy "
                             f"{evaluation.SCIPY_BASELINES[name]}) has no learning rate.")
      spec = evaluation.scipy_baseline(name)
    elif item.startswith("pretrained:") or os.path.exists(item):
      try:
        spec = evaluation.from_optimizer(item, cli.load_learned(item))
      except ValueError as e:
        raise app.UsageError(f"--optimizers entry {item!r}: {e}") from e
    else:
      raise app.UsageError(
          f"--optimizers entry {item!r} is neither a baseline ({', '.join(evaluation.BASELINES)}"
          f"[@LEARNING_RATE]), pretrained:NAME (NAME in: "
          f"{', '.join(keras_l2o.pretrained.names()) or 'none shipped'}), nor an existing "
          "meta-training directory or export. Problems with a full-batch objective also take "
          f"the scipy baselines {', '.join(evaluation.SCIPY_BASELINES)}.")
    specs.append(spec)
  return specs


def build_family():
  """The problem family from the flags; raises app.UsageError."""
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  if FLAGS.problem not in problems.names():
    raise app.UsageError(f"--problem={FLAGS.problem!r} is not a problem. Valid problems: "
                         f"{', '.join(problems.names())}.")
  try:
    config = json.loads(FLAGS.problem_config)
  except json.JSONDecodeError as e:
    raise app.UsageError(f"--problem_config is not valid JSON ({e}).") from e
  if not isinstance(config, dict):
    raise app.UsageError(f"--problem_config must be a JSON object. Received: "
                         f"{FLAGS.problem_config!r}")
  if FLAGS.data_path:
    config["data_path"] = FLAGS.data_path
  config.setdefault("seed", FLAGS.seed)
  try:
    return problems.get(FLAGS.problem, **config)
  except (ValueError, TypeError) as e:
    raise app.UsageError(str(e)) from e


def check_output_dir(path, overwrite):
  """Before any work: `path` can be written and holds no results unless `overwrite`.

  Raises:
    app.UsageError: `path` is a file, cannot be written, or holds results
      (without `overwrite`).
  """
  cli.check_writable_dir("output_dir", path)
  existing = [name for name in RESULT_FILES if os.path.exists(os.path.join(path, name))]
  if existing and not overwrite:
    raise app.UsageError(f"--output_dir={path} already holds {', '.join(existing)}; pass "
                         "--overwrite to replace them (nothing was written).")


def main(argv):
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.suite:  # the held-out task suite: scripts/suite_evaluate.py
    suite_evaluate.main(FLAGS)
    return
  try:  # first: it may split the CPU or join a cluster before TensorFlow initialises
    strategy = strategy_flags.strategy_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  grid = evaluation.DEFAULT_GRID
  if FLAGS.grid:
    try:
      grid = tuple(float(v) for v in FLAGS.grid.split(","))
    except ValueError as e:
      raise app.UsageError(f"--grid must be a comma list of numbers. Received: "
                           f"{FLAGS.grid!r}") from e
    if not all(math.isfinite(v) and v > 0 for v in grid):
      raise app.UsageError(f"--grid learning rates must be finite numbers > 0. Received: "
                           f"{FLAGS.grid!r}")
  family = build_family()
  specs = parse_optimizers(FLAGS.optimizers)
  if any(spec.scipy_method is not None for spec in specs):
    try:
      evaluation.check_full_batch(family)
    except ValueError as e:
      raise app.UsageError(f"--problem={FLAGS.problem}: {e}") from e
  check_output_dir(FLAGS.output_dir, FLAGS.overwrite)  # last check, first write: before the work
  results = evaluation.evaluate(family, specs, num_problems=FLAGS.num_problems,
                                horizon=FLAGS.horizon, tuning_problems=FLAGS.tuning_problems,
                                grid=grid, speedup_horizon_factor=FLAGS.speedup_horizon_factor,
                                problem_name=FLAGS.problem, strategy=strategy)
  paths = evaluation.write_results(results, FLAGS.output_dir, FLAGS.title)
  logging.info("Wrote %s", paths)
  print(evaluation.report_markdown(results, FLAGS.title))


def run():
  """Console-script entry point."""
  cli.run(main, "keras-l2o-evaluate")


if __name__ == "__main__":
  run()
