"""Pieces every meta-trainer's outer loop shares.

A run directory `save_dir` holds:

* `config.json` — everything needed to know what ran (and to resume it);
* `metrics.jsonl` — one JSON object per logged step (`step`, `meta_loss`, ...,
  and `validation_loss` on validation steps);
* `checkpoints/` — `tf.train.CheckpointManager` checkpoints: a run killed at any
  moment resumes from the last one and, being deterministic, ends exactly as an
  uninterrupted run would;
* `tensorboard/` — summaries;
* `run.lock` — the lock of the process writing the run (`keras_l2o.run_lock`):
  every trainer's `run` holds it (`holds_run_lock`), so a second process on
  the same directory is refused instead of interleaving its writes;
* `final/` and `best/` — the run's result and the best-on-validation learned
  optimizer as SavedModel exports (`keras_l2o.load(save_dir)` /
  `keras_l2o.load(save_dir, which="best")`). `final/` holds the last step's
  meta-parameters, except for GPS runs with `restore_best` (their default),
  which end on the best validated iteration as Keras's
  `EarlyStopping(restore_best_weights=True)` does; those runs also write
  `last/`, the last iteration's (`which="last"`).
"""

import functools
import hashlib
import json
import math
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

import keras_l2o
from keras_l2o import run_directory
from keras_l2o import run_lock

# The run directory's facts live in keras_l2o.run_directory (keras_l2o.load reads them too).
CONFIG_FILE = run_directory.CONFIG_FILE
METRICS_FILE = run_directory.METRICS_FILE
RUN_FORMAT = run_directory.RUN_FORMAT
read_config = run_directory.read_config


def holds_run_lock(run):
  """Decorates a trainer's `run` to hold its `save_dir`'s lock (`keras_l2o.run_lock`) throughout.

  Another process holding it raises `run_lock.RunLockedError` before anything
  is read or written. Non-chief workers (`is_chief` False) write no run
  directory and take no lock.
  """

  @functools.wraps(run)
  def locked(self, *args, **kwargs):
    if not getattr(self, "is_chief", True):
      return run(self, *args, **kwargs)
    with run_lock.hold(self.save_dir):
      return run(self, *args, **kwargs)

  return locked


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
    raises `keras_l2o.run_directory.RunDirectoryError` naming the file and line.
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
        raise run_directory.RunDirectoryError(
            f"Line {number} of {self.path} is not a metrics record ({e}): "
                         f"{line[:80]!r}. Delete that line to resume the run.") from None
      records.append(record)
    return records

  def write(self, record: dict):
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in record.items()}
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(json.dumps(clean) + "\n")


class Progress:
  """A progress bar with ETA on a terminal; periodic log lines otherwise."""

  def __init__(self, total: int, start: int = 0, log_every_seconds: float = 30.0):
    self.total, self.start = total, start
    self._start_time = time.time()
    self._last_log = 0.0
    self._log_every = log_every_seconds
    self._bar = keras.utils.Progbar(total, stateful_metrics=["meta_loss", "validation_loss"],
                                    unit_name="meta-step") if sys.stdout.isatty() else None
    if self._bar is not None and start:
      self._bar.update(start)

  def update(self, step: int, **values):
    values = {k: float(v) for k, v in values.items() if v is not None}
    if self._bar is not None:
      self._bar.update(step, values=list(values.items()))
      return
    now = time.time()
    if now - self._last_log < self._log_every and step < self.total:
      return
    self._last_log = now
    done = step - self.start
    rate = done / max(now - self._start_time, 1e-9)
    eta = (self.total - step) / rate if rate > 0 else float("inf")
    shown = " ".join(f"{k}={v:.4g}" for k, v in values.items())
    logging.info("meta-step %d/%d (%.1f/s, ETA %s) %s", step, self.total, rate,
                 time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta) else "?", shown)


def write_config(save_dir, config: dict):
  tmp = os.path.join(save_dir, CONFIG_FILE + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  os.replace(tmp, os.path.join(save_dir, CONFIG_FILE))


def versions() -> dict:
  return {"keras_l2o": keras_l2o.__version__, "tensorflow": tf.__version__,
          "keras": keras.__version__, "numpy": np.__version__}


def export_optimizer(save_dir, which, rule, meta_params, learning_rate):
  """Writes `save_dir/which` as a keras_l2o export of `rule` with `meta_params`."""
  optimizer = keras_l2o.LearnedOptimizer(
      rule, meta_params=meta_params,
      learning_rate=float(learning_rate), name=f"meta_trained_{rule.name}_{which}")
  path = os.path.join(save_dir, which)
  tmp = path + ".tmp"
  if os.path.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  optimizer.export(tmp)
  if os.path.exists(path):
    tf.io.gfile.rmtree(path)
  os.replace(tmp, path)
  return path


def variables_like(nested, name):
  """Non-trainable float variables initialised from `nested` tensors."""
  return tf.nest.map_structure(lambda t: tf.Variable(t, trainable=False, name=name), nested)


def is_chief(strategy) -> bool:
  """Whether this process writes the run directory.

  True except on the non-chief workers of a multi-worker cluster: the task
  `chief`, or worker 0 when the cluster has no chief.

  Args:
    strategy: a `tf.distribute.Strategy`.
  """
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def digest(meta_params) -> str:
  """SHA-256 of the meta-parameters' bytes (in flattening order): equal runs, equal digests."""
  sha = hashlib.sha256()
  for value in tf.nest.flatten(meta_params):
    sha.update(np.ascontiguousarray(tf.convert_to_tensor(value).numpy()).tobytes())
  return sha.hexdigest()


def check_positive_ints(config, names):
  """Raises ValueError naming the first of `config`'s fields `names` that is not an int >= 1."""
  for name in names:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
      raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")


def check_bools(config, names):
  """Raises ValueError naming the first of `config`'s fields `names` that is not a bool."""
  for name in names:
    value = getattr(config, name)
    if not isinstance(value, (bool, np.bool_)):
      raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")


def check_numbers(config, positive=(), non_negative=()):
  """Raises ValueError naming the first field that is not a number > 0 (`positive`) or >= 0."""
  for names, kind, ok in ((positive, "positive", lambda v: v > 0),
                          (non_negative, "non-negative", lambda v: v >= 0)):
    for name in names:
      value = getattr(config, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ValueError(f"`{name}` must be a {kind} number. Received: {name}={value!r}")


# ----------------------------------------------- shared by the trainers' run loops --
# A trainer using these holds: `meta_vars`, `_flat_meta`, `best_vars`, the tf.Variables
# `best_validation`, `rounds_without_improvement`, `stopped_early`, `nonfinite_skips`,
# `diverged_trajectories`, a `config` with `patience`, `metrics` (MetricsLog), `rule`,
# `save_dir`, `is_chief`, and a `validate()` method.


def restore_run(trainer, counter, what: str = "meta-step") -> bool:
  """Restores `trainer`'s newest readable checkpoint and trims its metrics to it.

  See `trainers.checkpointing.restore_newest_readable`: unreadable newer
  checkpoints are skipped with a warning; checkpoints of which none can be read
  raise ValueError. A non-chief worker (`is_chief` False) only reads.

  Args:
    trainer: a meta-trainer with `checkpoint`, `manager` and `metrics`.
    counter: the trainer's step variable, read after the restore.
    what: the counter's name in messages.

  Returns:
    Whether a checkpoint was restored.
  """
  from trainers import checkpointing  # pylint: disable=g-import-not-at-top
  trainer.manager, latest, _ = checkpointing.restore_newest_readable(
      trainer.checkpoint, trainer.manager, what, repair=getattr(trainer, "is_chief", True))
  if latest is None:
    return False
  trainer.metrics.truncate_after(int(counter))
  logging.info("Resumed from %s at %s %d.", latest, what, int(counter))
  return True


def open_run(trainer):
  """The start every trainer's `run` shares: restore, `config.json`, TensorBoard.

  Restores the newest readable checkpoint (`trainer.restore()`), writes the
  run's configuration (the chief only), opens the TensorBoard writer and, on a
  fresh start, drops metrics records of an attempt killed before its first
  checkpoint.

  Args:
    trainer: a meta-trainer with `restore()`, `_run_config()`, `save_dir`,
      `metrics` and, where it runs distributed, `is_chief` and `_write_dir`.

  Returns:
    `(resumed, writer)`: whether a checkpoint was restored, and the
    `tf.summary` writer of the run's `tensorboard/` folder.
  """
  resumed = trainer.restore()
  if getattr(trainer, "is_chief", True):
    write_config(trainer.save_dir, trainer._run_config())  # pylint: disable=protected-access
  write_dir = getattr(trainer, "_write_dir", trainer.save_dir)
  writer = tf.summary.create_file_writer(os.path.join(write_dir, "tensorboard"))
  if not resumed:
    trainer.metrics.truncate_after(-1)  # records of an attempt killed before its first checkpoint
  return resumed, writer


def validation_round(trainer, step) -> float:
  """Validates `trainer`, keeps the best meta-parameters and counts rounds for early stopping.

  Returns:
    The validation loss.
  """
  value = trainer.validate()
  if value < float(trainer.best_validation):
    trainer.best_validation.assign(value)
    for best, current in zip(tf.nest.flatten(trainer.best_vars), trainer._flat_meta):  # pylint: disable=protected-access
      best.assign(current)
    trainer.rounds_without_improvement.assign(0)
  else:
    trainer.rounds_without_improvement.assign_add(1)
  patience = trainer.config.patience
  if patience and int(trainer.rounds_without_improvement) >= patience:
    logging.info("Early stopping at meta-step %d: %d validation rounds without improvement.",
                 step, int(trainer.rounds_without_improvement))
    trainer.stopped_early.assign(True)
  return value


def write_record(metrics, writer, record):
  """Appends `record` to the metrics log and writes its numbers to TensorBoard at its step."""
  metrics.write(record)
  with writer.as_default(step=record["step"]):
    for key, value in record.items():
      if key != "step" and value is not None:
        tf.summary.scalar(key, value)


def finish_run(trainer, step, learning_rate) -> dict:
  """Exports `final/` and `best/` (on the chief) and returns the run's summary.

  A run that never validated a finite loss keeps its last meta-parameters as the best.
  """
  if not math.isfinite(float(trainer.best_validation)):
    for best, current in zip(tf.nest.flatten(trainer.best_vars), trainer._flat_meta):  # pylint: disable=protected-access
      best.assign(current)
  if trainer.is_chief:
    export_optimizer(trainer.save_dir, "final", trainer.rule, trainer.meta_vars, learning_rate)
    export_optimizer(trainer.save_dir, "best", trainer.rule, trainer.best_vars, learning_rate)
  records = trainer.metrics.read()
  validation = [r["validation_loss"] for r in records if r.get("validation_loss") is not None]
  return {"steps": step, "first_validation_loss": validation[0] if validation else None,
          "last_validation_loss": validation[-1] if validation else None,
          "best_validation_loss": float(trainer.best_validation),
          "nonfinite_skips": int(trainer.nonfinite_skips),
          "diverged_trajectories": int(trainer.diverged_trajectories),
          "stopped_early": bool(trainer.stopped_early),
          "meta_params_sha256": digest(trainer.meta_vars)}
