r"""Exports a learned optimizer as a SavedModel usable without keras_l2o.

Usage:
  keras-l2o-export --rule=lstm --seed=0 --output_dir=/tmp/lstm_export
  keras-l2o-export --source=/path/to/previous/export --output_dir=/tmp/copy

The export has `init_state(n)`, `step(grad, var, state, iteration)` and
`learning_rate(iteration)` functions; see `keras_l2o.export`.
"""

import json
import os

from absl import app
from absl import flags
from absl import logging

from . import cli


def define_flags():
  """Defines this script's flags (called once, at import of the script only)."""
  flags.DEFINE_string("rule", None, "Rule name (see keras_l2o.rules.names()); used when "
                      "--source is not given.")
  flags.DEFINE_string("rule_config", "{}", "JSON object of rule configuration, e.g. "
                      "'{\"preset\": \"dm_code\"}'.")
  flags.DEFINE_integer("seed", 0, "Seed of the initial meta-parameters.")
  flags.DEFINE_float("learning_rate", 1.0, "Learning rate multiplying the rule's output.")
  flags.DEFINE_string("source", None, "Anything keras_l2o.load() reads (an export, later a "
                      "meta-training directory); exported again.")
  flags.DEFINE_string("output_dir", None, "Directory to write the SavedModel to.")
  flags.DEFINE_bool("overwrite", False, "Allow writing into a non-empty --output_dir.")
  flags.mark_flag_as_required("output_dir")
  cli.register_number_validator("learning_rate")


define_flags()
FLAGS = flags.FLAGS


def validate_flags():
  """Raises `app.UsageError` with a clear message for bad flag values."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  if os.path.exists(FLAGS.output_dir) and not os.path.isdir(FLAGS.output_dir):
    raise app.UsageError(f"--output_dir={FLAGS.output_dir} is a file, not a directory.")
  if FLAGS.source is not None and not os.path.exists(FLAGS.source):
    raise app.UsageError(f"--source={FLAGS.source} does not exist.")
  if os.path.isdir(FLAGS.output_dir) and os.listdir(FLAGS.output_dir) and not FLAGS.overwrite:
    raise app.UsageError(f"--output_dir={FLAGS.output_dir} exists and is not empty; pass "
                         "--overwrite to replace it.")
  if (FLAGS.rule is None) == (FLAGS.source is None):
    raise app.UsageError("Give exactly one of --rule or --source. Received: "
                         f"--rule={FLAGS.rule!r}, --source={FLAGS.source!r}.")
  if FLAGS.rule is not None and FLAGS.rule not in keras_l2o.rules.names():
    raise app.UsageError(f"--rule={FLAGS.rule!r} is not a rule. Valid rules: "
                         f"{', '.join(keras_l2o.rules.names())}.")
  try:
    config = json.loads(FLAGS.rule_config)
  except json.JSONDecodeError as e:
    raise app.UsageError(f"--rule_config is not valid JSON ({e}). Received: "
                         f"{FLAGS.rule_config!r}") from e
  if not isinstance(config, dict):
    raise app.UsageError(f"--rule_config must be a JSON object. Received: {FLAGS.rule_config!r}")
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  config = validate_flags()
  import keras_l2o  # pylint: disable=g-import-not-at-top
  if FLAGS.source:
    try:
      optimizer = keras_l2o.load(FLAGS.source)
    except (ValueError, OSError) as e:
      raise app.UsageError(f"--source={FLAGS.source}: {e}") from None
  else:
    try:
      rule = keras_l2o.rules.get(FLAGS.rule, **config)
    except ValueError as e:
      raise app.UsageError(str(e)) from e
    optimizer = keras_l2o.LearnedOptimizer(rule, seed=FLAGS.seed,
                                           learning_rate=FLAGS.learning_rate)
  path = optimizer.export(FLAGS.output_dir, overwrite=FLAGS.overwrite)
  logging.info("Exported %s (rule %s) to %s", optimizer.name, optimizer.rule, path)
  print(path)


def run():
  """Console-script entry point."""
  cli.run(main, "keras-l2o-export")


if __name__ == "__main__":
  run()
