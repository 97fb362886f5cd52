r"""Turns a meta-training run into a pretrained optimizer shipped in keras_l2o/pretrained/.

Usage:
  python -m scripts.save_pretrained --run_dir=runs/l2l-quadratic --name=l2l-quadratic \
      --which=best --weaknesses="Trained on 10-d quadratics only; ..."

Writes `NAME.npz` (meta-parameters) and `NAME.json` (the card: rule, learning
rate, what it was trained on and for how many steps, the command that
reproduces it, known weaknesses) next to `keras_l2o/pretrained/__init__.py`.
"""

import json
import os
import shlex

from absl import app
from absl import flags

from . import trainers_module


def define_flags():
  """Defines this script's flags."""
  flags.DEFINE_string("run_dir", None, "A keras-l2o-meta-train save_dir.")
  flags.DEFINE_string("name", None, "Name of the pretrained optimizer (e.g. l2l-quadratic).")
  flags.DEFINE_enum("which", "best", ["best", "final"], "Which meta-parameters of the run.")
  flags.DEFINE_string("description", "", "One sentence on what it is for.")
  flags.DEFINE_string("weaknesses", "", "Where it is known to be weak.")
  flags.DEFINE_string("results", "", "A short statement of its measured results (with the "
                      "command that measures them).")
  flags.DEFINE_string("output_dir", None, "Where to write (default: the installed "
                      "keras_l2o/pretrained folder).")


define_flags()
FLAGS = flags.FLAGS


def reproduce_command(settings: dict, save_dir: str) -> str:
  """The keras-l2o-meta-train command line that reproduces a run from its settings."""
  parts = ["keras-l2o-meta-train"]
  for key in sorted(settings):
    value = settings[key]
    if value is None:
      continue
    if isinstance(value, bool):
      parts.append(f"--{key}" if value else f"--no{key}")
    elif isinstance(value, (dict, list)):
      parts.append(f"--{key}={shlex.quote(json.dumps(value, sort_keys=True))}")
    else:
      parts.append(f"--{key}={shlex.quote(str(value))}")
  parts.append(f"--save_dir={save_dir}")
  return " ".join(parts)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.run_dir or not FLAGS.name:
    raise app.UsageError("--run_dir and --name are required.")
  import keras_l2o  # pylint: disable=g-import-not-at-top
  base = trainers_module("base")
  try:
    optimizer = keras_l2o.load(FLAGS.run_dir, which=FLAGS.which)
    config = base.read_config(FLAGS.run_dir)
  except (ValueError, OSError) as e:
    raise app.UsageError(f"--run_dir={FLAGS.run_dir!r}: {e}") from e
  records = base.MetricsLog(FLAGS.run_dir).read()
  validation = [r for r in records if r.get("validation_loss") is not None]
  settings = config.get("settings", {})
  card = {
      "description": FLAGS.description,
      "learning_rate": float(optimizer.learning_rate.numpy()),
      "trained_on": {"problem": settings.get("problem"),
                     "problem_config": config.get("problem", {}).get("config")},
      "meta_training": {"trainer": config.get("trainer"), "steps": records[-1]["step"] if records
                        else 0, "which": FLAGS.which,
                        # The trainer's own settings ("bptt" or "gps").
                        config.get("trainer") or "bptt": config.get(config.get("trainer") or "bptt"),
                        "first_validation_loss": validation[0]["validation_loss"] if validation
                        else None,
                        "best_validation_loss": min(r["validation_loss"] for r in validation)
                        if validation else None},
      "command": reproduce_command(settings, os.path.join("runs", FLAGS.name)) + (
          f" && python -m scripts.save_pretrained --run_dir=runs/{FLAGS.name} --name={FLAGS.name}"
          f" --which={FLAGS.which}"),
      "weaknesses": FLAGS.weaknesses,
      "results": FLAGS.results,
      "versions": config.get("versions"),
  }
  kwargs = {"directory": FLAGS.output_dir} if FLAGS.output_dir else {}
  info = keras_l2o.pretrained.save(FLAGS.name, optimizer.rule, optimizer.meta_params, card,
                                  **kwargs)
  print(json.dumps(info, indent=2))


def run():
  app.run(main)


if __name__ == "__main__":
  run()
