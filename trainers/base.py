"""Pieces the meta-trainers share besides their run loop (`trainers.loop.MetaTrainer`).

The run directory's layout (`config.json`, `metrics.jsonl`, `checkpoints/`,
`tensorboard/`, `run.lock`, the `final/`, `best/` and `last/` exports) is
`keras_l2o.run_directory`; this module keeps the names the trainers and tests
use for it, the run lock decorator, the progress bar, the export writer, the
meta-parameter digest and the configuration checks.
"""

import dataclasses
import functools
import hashlib
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
MetricsLog = run_directory.MetricsLog
write_config = run_directory.write_config


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


def versions() -> dict:
  return {"keras_l2o": keras_l2o.__version__, "tensorflow": tf.__version__,
          "keras": keras.__version__, "numpy": np.__version__}


def export_optimizer(save_dir, which, rule, meta_params, learning_rate):
  """Writes `save_dir/which` as a keras_l2o export of `rule` with `meta_params`."""
  optimizer = keras_l2o.LearnedOptimizer(
      rule, meta_params=meta_params,
      learning_rate=float(learning_rate), name=f"meta_trained_{rule.name}_{which}")
  path = run_directory.export_path(save_dir, which)
  tmp = path + ".tmp"
  if os.path.exists(tmp):
    tf.io.gfile.rmtree(tmp)
  optimizer.export(tmp)
  if os.path.exists(path):
    tf.io.gfile.rmtree(path)
  os.replace(tmp, path)
  return path


def meta_adam(config, variables):
  """Keras Adam over the meta-parameter `variables`, at `config.meta_learning_rate`, clipped to
  `config.meta_clipnorm` (global norm; None: off), built."""
  optimizer = keras.optimizers.Adam(config.meta_learning_rate,
                                    global_clipnorm=config.meta_clipnorm)
  optimizer.build(variables)
  return optimizer


def initial_meta_params(rule, seed, given=None):
  """`given` checked against `rule` (`keras_l2o.meta_params.validate`), or the rule's
  initialisation from `seed`.

  Raises:
    ValueError: the rule has no meta-parameters to train, or `given` does not fit it.
  """
  from keras_l2o import meta_params as meta_params_lib  # pylint: disable=g-import-not-at-top
  if not rule.is_learned:
    raise ValueError(f"Rule {rule.name!r} has no meta-parameters to train.")
  return rule.init_meta_params(seed) if given is None else meta_params_lib.validate(rule, given)


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


def config_field(default, help_text: str, **metadata):
  """A trainer configuration's dataclass field: its default, its help and how to check it.

  The command line makes its flag from these (`scripts.config_flags`); see
  there for the metadata keys (`lower_bound`, `choices`, `number`,
  `zero_is_none`, `flag_default`, `flag`).
  """
  if isinstance(default, (list, dict)):
    raise TypeError("A configuration default must be immutable (use a tuple).")
  return dataclasses.field(default=default, metadata={"help": help_text, **metadata})


def check_fields(config):
  """Checks every field of the dataclass `config` against its `config_field` metadata.

  A field with `lower_bound` (1) must be a positive integer, one with `number`
  a positive (`"positive"`, or a `zero_is_none` field) or non-negative number,
  one with `choices` one of them, and a `bool` field True or False; a None
  value of an `Optional` field is allowed. The same rules make the flags
  (`scripts.config_flags`), so a field declares its check once.

  Raises:
    ValueError: naming the first field that breaks its rule, what it allows
      and what it received.
  """
  for field in dataclasses.fields(config):
    meta, value = field.metadata, getattr(config, field.name)
    if value is None and (field.default is None or meta.get("zero_is_none")):
      continue
    if "lower_bound" in meta:
      check_positive_ints(config, (field.name,))
    if "number" in meta:
      positive = meta["number"] == "positive" or meta.get("zero_is_none")
      check_numbers(config, **{"positive" if positive else "non_negative": (field.name,)})
    if "choices" in meta and value not in meta["choices"]:
      raise ValueError(f"`{field.name}` must be one of {list(meta['choices'])}. Received: "
                       f"{field.name}={value!r}")
    if field.type in (bool, "bool"):
      check_bools(config, (field.name,))


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
  from . import checkpointing  # pylint: disable=g-import-not-at-top
  trainer.manager, latest, _ = checkpointing.restore_newest_readable(
      trainer.checkpoint, trainer.manager, what, repair=getattr(trainer, "is_chief", True))
  if latest is None:
    return False
  trainer.metrics.truncate_after(int(counter))
  logging.info("Resumed from %s at %s %d.", latest, what, int(counter))
  return True


def write_record(metrics, writer, record):
  """Appends `record` to the metrics log and writes its numbers to TensorBoard at its step."""
  metrics.write(record)
  with writer.as_default(step=record["step"]):
    for key, value in record.items():
      if key != "step" and value is not None:
        tf.summary.scalar(key, value)
