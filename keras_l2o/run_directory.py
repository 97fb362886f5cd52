"""The layout of a meta-training run directory, in one place.

`keras-l2o-meta-train` (the trainers in `trainers/`) writes a run directory;
`keras_l2o.load` and the command lines read it. Both take its file names and
its `config.json` reader from here. A run directory holds:

* `config.json` (`CONFIG_FILE`): what ran, and how to resume it; its `format`
  is `RUN_FORMAT`;
* `metrics.jsonl` (`METRICS_FILE`): one JSON object per logged step;
* `checkpoints/` (`CHECKPOINTS_DIR`): the training state;
* `tensorboard/`: summaries;
* `final/`, `best/` and (GPS) `last/` (`EXPORTS`): SavedModel exports;
* `run.lock` (`LOCK_FILE`): the exclusive lock of the process writing the run
  (`keras_l2o.run_lock`).

This module and `run_lock` import only the standard library (and absl), so the
command lines use them before TensorFlow starts.
"""

import json
import os

from keras_l2o import run_lock

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = run_lock.LOCK_FILE
RUN_FORMAT = "keras_l2o.meta_train"
EXPORTS = ("final", "best", "last")


class RunDirectoryError(ValueError):
  """A run directory's file cannot be used (damaged, unreadable); the message says which and why."""


def has_config(save_dir) -> bool:
  """Whether `save_dir` holds a `config.json` (a run was started there)."""
  return os.path.isfile(os.path.join(os.fspath(save_dir), CONFIG_FILE))


def read_config(save_dir) -> dict:
  """The run's `config.json` as a dict.

  Args:
    save_dir: a run directory.

  Returns:
    The parsed JSON object.

  Raises:
    RunDirectoryError: (a ValueError) if the file is missing, is not valid
      JSON or not a JSON object; the message names the file and the reason.

  Example:

  >>> import json, os, tempfile
  >>> from keras_l2o import run_directory
  >>> d = tempfile.mkdtemp()
  >>> with open(os.path.join(d, "config.json"), "w") as f:
  ...   _ = f.write('{"format": "keras_l2o.meta_train"}')
  >>> run_directory.read_config(d)["format"]
  'keras_l2o.meta_train'
  """
  path = os.path.join(os.fspath(save_dir), CONFIG_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise RunDirectoryError(
        f"Cannot read the run's {CONFIG_FILE} ({path}): {e.strerror or e}.") from e
  try:
    config = json.loads(text)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RunDirectoryError(f"The run's {CONFIG_FILE} ({path}) is not valid JSON ({e}); it was "
                     "damaged after the run wrote it.") from e
  if not isinstance(config, dict):
    raise RunDirectoryError(f"The run's {CONFIG_FILE} ({path}) must hold a JSON object. Received: "
                     f"{type(config).__name__}.")
  return config


def run_format(path):
  """The `format` recorded in `path/config.json`, or None if there is no readable one."""
  try:
    return read_config(path).get("format")
  except ValueError:
    return None


def is_run(path) -> bool:
  """Whether `path` is a meta-training run directory (its config names `RUN_FORMAT`)."""
  return run_format(path) == RUN_FORMAT
