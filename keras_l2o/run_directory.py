"""The layout of a meta-training run directory, in one place.

`keras-l2o-meta-train` (the trainers in `trainers/`) writes a run directory;
`keras_l2o.load` and the command lines read it. Both take its file names and
its `config.json` reader from here. A run directory holds:

* `config.json` (`CONFIG_FILE`): what ran, and how to resume it; its `format`
  is `RUN_FORMAT` and its `version` `CONFIG_VERSION` (`run_config` builds it,
  `write_config` writes it, `read_config` reads it: the only writer and reader);
* `metrics.jsonl` (`METRICS_FILE`, `MetricsLog`): one JSON object per logged step;
* `checkpoints/` (`CHECKPOINTS_DIR`): the training state;
* `tensorboard/`: summaries;
* `final/`, `best/` and (GPS) `last/` (`EXPORTS`): SavedModel exports;
* `run.lock` (`LOCK_FILE`): the exclusive lock of the process writing the run
  (`keras_l2o.run_lock`).

This module and `run_lock` import only the standard library (and absl), so the
command lines use them before TensorFlow starts.
"""

import dataclasses
import json
import math
import os

from absl import logging

from keras_l2o import run_lock

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = run_lock.LOCK_FILE
RUN_FORMAT = "keras_l2o.meta_train"
EXPORTS = ("final", "best", "last")
# config.json's schema. Version 1 (runs written before the field existed) has the same
# entries without `version`; `read_config` returns it with `version` 1.
CONFIG_VERSION = 2


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
  config.setdefault("version", 1)
  if not isinstance(config["version"], int) or config["version"] > CONFIG_VERSION:
    raise RunDirectoryError(f"The run's {CONFIG_FILE} ({path}) has version {config['version']!r}; "
                            f"this keras_l2o reads versions 1 to {CONFIG_VERSION}.")
  return config


def config_dict(config) -> dict:
  """A trainer configuration (a dataclass) as JSON values: tuples become lists."""
  def plain(value):
    return [plain(v) for v in value] if isinstance(value, (tuple, list)) else value
  return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def run_config(trainer, rule, family, trainer_config, versions, extra=None) -> dict:
  """The content of a run's `config.json` (schema `CONFIG_VERSION`).

  Args:
    trainer: the trainer's name (`"bptt"`, `"pes"`, `"es"`, `"gps"`, ...).
    rule: the rule's serialized form (`keras_l2o.rules.serialize`).
    family: the problem family (its class name and `get_config()` are saved).
    trainer_config: the trainer's own entries, e.g. `{"bptt": {...}, "strategy": {...}}`.
    versions: the library versions that ran it.
    extra: more entries (the command line's `settings` and `problem`).

  Returns:
    A dict of JSON values.
  """
  return {"format": RUN_FORMAT, "version": CONFIG_VERSION, "trainer": trainer, "rule": rule,
          "problem_family": {"class": type(family).__name__, "config": family.get_config()},
          **trainer_config, "versions": versions, **(extra or {})}


def write_config(save_dir, config: dict) -> None:
  """Writes `config` as the run's `config.json`, atomically (a kill leaves the old or the new)."""
  tmp = os.path.join(os.fspath(save_dir), CONFIG_FILE + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(os.fspath(save_dir), CONFIG_FILE))


def saved_settings(save_dir) -> dict:
  """The command-line `settings` a run in `save_dir` started with (how a resumed run reads them).

  Raises:
    RunDirectoryError: the config cannot be read, or has no `settings` object
      (it was not written by `keras-l2o-meta-train`).
  """
  settings = read_config(save_dir).get("settings")
  if not isinstance(settings, dict):
    raise RunDirectoryError(f"the run's {CONFIG_FILE} in {save_dir} has no 'settings' object; "
                            "it was not written by keras-l2o-meta-train.")
  return settings


def export_path(save_dir, which: str) -> str:
  """The folder of export `which` (one of `EXPORTS`) of the run in `save_dir`."""
  if which not in EXPORTS:
    raise ValueError(f"Argument `which` must be one of {list(EXPORTS)}. Received: which={which!r}")
  return os.path.join(os.fspath(save_dir), which)


class MetricsLog:
  """Appends one JSON object per line to `metrics.jsonl`; truncates on resume."""

  def __init__(self, save_dir):
    self.path = os.path.join(save_dir, METRICS_FILE)

  def truncate_after(self, step: int):
    """Keeps the records up to `step` (the checkpoint resumed from), one per step.

    Records after `step` were written after that checkpoint; a step recorded
    twice (a run killed between a record and its checkpoint, then restarted)
    keeps its last record. `step=-1` empties the log.
    """
    if not os.path.exists(self.path):
      return
    by_step = {}
    for record in self.read():
      if record["step"] <= step:
        by_step.pop(record["step"], None)
        by_step[record["step"]] = record
    tmp = self.path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
      f.writelines(json.dumps(r) + "\n" for r in sorted(by_step.values(),
                                                       key=lambda r: r["step"]))
    os.replace(tmp, self.path)

  def read(self) -> list:
    """The records, in file order.

    A last line cut short (a kill in the middle of a write) is dropped with a
    warning; any other line that is not a JSON object with an integer `step`
    raises `RunDirectoryError` naming the file and line.
    """
    if not os.path.exists(self.path):
      return []
    with open(self.path, encoding="utf-8", errors="replace") as f:
      text = f.read()
    lines = text.split("\n")
    records = []
    for number, line in enumerate(lines, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
        if not isinstance(record, dict) or isinstance(record.get("step"), bool) or not isinstance(
            record.get("step"), int):
          raise ValueError("not a JSON object with an integer 'step'")
      except ValueError as e:
        if number == len(lines):  # no newline after it: the write was cut short
          logging.warning("Dropping the incomplete last line of %s: %r.", self.path, line[:80])
          continue
        raise RunDirectoryError(
            f"Line {number} of {self.path} is not a metrics record ({e}): "
            f"{line[:80]!r}. Delete that line to resume the run.") from None
      records.append(record)
    return records

  def write(self, record: dict):
    """Appends `record`; non-finite floats are written as null."""
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in record.items()}
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(clean) + "\n")


def run_format(path):
  """The `format` recorded in `path/config.json`, or None if there is no readable one."""
  try:
    return read_config(path).get("format")
  except ValueError:
    return None


def is_run(path) -> bool:
  """Whether `path` is a meta-training run directory (its config names `RUN_FORMAT`)."""
  return run_format(path) == RUN_FORMAT
