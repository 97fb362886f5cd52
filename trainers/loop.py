"""`MetaTrainer`: the one run loop every meta-trainer shares.

A meta-trainer (BPTT, PES / ES, GPS, coordinate-group GPS) supplies its
meta-step, its training state and its configuration; this class does the rest
of a run, the same way for all of them:

    restore the newest readable checkpoint (or start: `start()`, validate step 0)
    write config.json (keras_l2o.run_directory), open TensorBoard
    while step < total and not stopped early:
      metrics = meta_step(step)                     # the trainer's own work
      every log_every: a metrics record (metrics.jsonl and TensorBoard)
      every validation_every: validate, keep the best, count rounds for patience
      every checkpoint_every: checkpoint
    export final/ and best/ (and last/ where the trainer says so); return the summary

A subclass calls, in its `__init__`, `_init_run` (settings, run directory,
strategy), `_init_meta` (meta-parameters and the best copy), builds its own
state, then `_init_checkpoint` with that state; it implements `start`,
`meta_step` and `validate`, and `section` (its name in config.json).
The run directory's layout is `keras_l2o.run_directory`.
"""

import math
import os
import shutil
import tempfile
import weakref

import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o import rules as rules_lib
from keras_l2o import run_directory
from . import base


class MetaTrainer:
  """Base class of the meta-trainers: the run loop, checkpointing, metrics and exports.

  Class attributes a subclass may override:
    name: the trainer's name in config.json (`trainer`).
    section: the key of the trainer's configuration in config.json (e.g. "bptt").
    step_name: the summary's key for the number of meta-steps run.
    step_label: the meta-step's name in log messages.
    step_variable: the checkpoint key of the meta-step counter.
    early_stopping: whether the run checkpoints the early-stopping and
      non-finite counters (trainers whose configuration has `patience`).
    max_to_keep: checkpoints kept, unless the configuration has `checkpoints_kept`.
  """

  name = None
  section = None
  step_name = "steps"
  step_label = "meta-step"
  step_variable = "global_step"
  early_stopping = True
  max_to_keep = 3

  # ------------------------------------------------------------- set-up --
  def _init_run(self, rule, family, config, save_dir, strategy=None, extra_config=None):
    """Validates `config` and sets the run's settings, strategy and metrics log."""
    config.validate()
    self.rule = rules_lib.get(rule)
    self.family, self.config, self.save_dir = family, config, save_dir
    self.strategy = strategy or tf.distribute.get_strategy()
    self.num_replicas = int(self.strategy.num_replicas_in_sync)
    self.is_chief = base.is_chief(self.strategy)
    os.makedirs(save_dir, exist_ok=True)
    # Only the chief writes the run directory; other workers of a multi-worker
    # run log to a private temporary one (they restore from the chief's files).
    self._write_dir = save_dir if self.is_chief else tempfile.mkdtemp(prefix="keras_l2o_worker_")
    if not self.is_chief:  # deleted with the trainer (at the latest when the process exits)
      weakref.finalize(self, shutil.rmtree, self._write_dir, ignore_errors=True)
    self.metrics = run_directory.MetricsLog(self._write_dir)
    self._extra_config = extra_config or {}

  def _init_meta(self, initial, optimizer_factory=None):
    """The meta-parameter variables (in the strategy's scope), their best copy and the counters.

    Args:
      initial: the starting meta-parameters (nested tensors).
      optimizer_factory: called in the strategy's scope after `meta_vars`
        exist; its result is `self.meta_optimizer`.
    """
    with self.strategy.scope():  # mirrored on every replica (or on the parameter servers)
      self.meta_vars = base.variables_like(initial, "meta")
      self._flat_meta = tf.nest.flatten(self.meta_vars)
      if optimizer_factory is not None:
        self.meta_optimizer = optimizer_factory()
    self.best_vars = base.variables_like(initial, "best")
    counter = lambda: tf.Variable(0, dtype=tf.int64, trainable=False)  # pylint: disable=unnecessary-lambda-assignment
    self.step_counter = counter()
    self.nonfinite_skips, self.diverged_trajectories = counter(), counter()
    self.rounds_without_improvement = counter()
    self.best_validation = tf.Variable(np.inf, dtype=tf.float64, trainable=False)
    self.stopped_early = tf.Variable(False, trainable=False)

  def _init_checkpoint(self, **state):
    """One `tf.train.Checkpoint` of the shared state and the trainer's `state`, and its manager."""
    shared = {"meta": self.meta_vars, "best": self.best_vars,
              self.step_variable: self.step_counter, "best_validation": self.best_validation}
    if self.early_stopping:
      shared.update(nonfinite_skips=self.nonfinite_skips, diverged=self.diverged_trajectories,
                    rounds=self.rounds_without_improvement, stopped_early=self.stopped_early)
    self.checkpoint = tf.train.Checkpoint(**shared, **state)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self.save_dir, run_directory.CHECKPOINTS_DIR),
        max_to_keep=getattr(self.config, "checkpoints_kept", self.max_to_keep))

  # ------------------------------------------------ what a trainer supplies --
  def start(self):
    """Prepares a fresh run's training state before the first validation (default: nothing)."""

  def meta_step(self, step: int) -> dict:
    """Runs meta-step `step` (0-based) and returns its metrics (`meta_loss` at least)."""
    raise NotImplementedError

  def validate(self) -> float:
    """The validation loss of the current meta-parameters (inf if not finite)."""
    raise NotImplementedError

  def trainer_config(self) -> dict:
    """The trainer's own entries of config.json: `{section: asdict(config)}` by default."""
    return {self.section: run_directory.config_dict(self.config)}

  def exports(self) -> dict:
    """`{which: meta-parameter variables}` exported at the end (final/ and best/ by default)."""
    return {"final": self.meta_vars, "best": self.best_vars}

  def summary_extras(self) -> dict:
    """More entries of the run's summary (default: none)."""
    return {}

  def record_extras(self) -> dict:
    """More entries of a metrics record, taken when it is written (default: none)."""
    return {}

  # ------------------------------------------------------------ schedule --
  @property
  def total_steps(self) -> int:
    return self.config.num_steps

  @property
  def log_every(self) -> int:
    return self.config.log_every

  @property
  def checkpoint_every(self) -> int:
    return self.config.checkpoint_every

  @property
  def learning_rate(self) -> float:
    return self.config.learning_rate

  # ---------------------------------------------------------------- run --
  def restore(self) -> bool:
    """Restores the newest readable checkpoint, if any. Returns whether it did.

    See `trainers.checkpointing.restore_newest_readable`: unreadable newer
    checkpoints are skipped with a warning; checkpoints of which none can be
    read raise ValueError.
    """
    return base.restore_run(self, self.step_counter, self.step_label)

  def run_config(self) -> dict:
    """This run's config.json (`keras_l2o.run_directory.run_config`)."""
    return run_directory.run_config(
        trainer=self.name, rule=rules_lib.serialize(self.rule), family=self.family,
        trainer_config=self.trainer_config(), versions=base.versions(), extra=self._extra_config)

  def _save(self, step):
    if self.is_chief:
      self.manager.save(checkpoint_number=step)

  def _open(self):
    """Restore (or start), config.json, TensorBoard; returns the writer and the first step."""
    resumed = self.restore()
    if self.is_chief:
      run_directory.write_config(self.save_dir, self.run_config())
    writer = tf.summary.create_file_writer(os.path.join(self._write_dir,
                                                        run_directory.TENSORBOARD_DIR))
    step = int(self.step_counter)
    if not resumed:
      self.metrics.truncate_after(-1)  # records of an attempt killed before its first checkpoint
    if step == 0 and not resumed:
      self.start()
      value = self.validation_round(0)
      base.write_record(self.metrics, writer, {
          "step": 0, "validation_loss": value, "best_validation_loss": float(self.best_validation)})
      self._save(0)
    return writer, step

  @base.holds_run_lock
  def run(self) -> dict:
    """Meta-trains until `total_steps` (or early stopping); returns a summary dict."""
    writer, step = self._open()
    total, every = self.total_steps, self.config.validation_every
    progress = base.Progress(total, start=step)
    while step < total and not bool(self.stopped_early):
      metrics = self.meta_step(step)
      step += 1
      self.step_counter.assign(step)
      record = None
      validating = step % every == 0 or step == total
      if validating or step % self.log_every == 0 or step == total:
        record = {"step": step, **metrics, **self.record_extras()}
        if self.early_stopping:
          record.update(nonfinite_skips=int(self.nonfinite_skips),
                        diverged_trajectories=int(self.diverged_trajectories))
        if validating:
          record["validation_loss"] = self.validation_round(step)
          record["best_validation_loss"] = float(self.best_validation)
        base.write_record(self.metrics, writer, record)
      if step % self.checkpoint_every == 0 or step == total:
        self._save(step)
      progress.update(step, meta_loss=metrics["meta_loss"],
                      validation_loss=record.get("validation_loss") if record else None)
    self._save(step)
    writer.flush()
    return self.finish(step)

  def validation_round(self, step) -> float:
    """Validates, keeps the best meta-parameters and counts rounds for early stopping."""
    value = self.validate()
    if value < float(self.best_validation):
      self.best_validation.assign(value)
      for best, current in zip(tf.nest.flatten(self.best_vars), self._flat_meta):
        best.assign(current)
      self.rounds_without_improvement.assign(0)
    else:
      self.rounds_without_improvement.assign_add(1)
    patience = getattr(self.config, "patience", None)
    if patience and int(self.rounds_without_improvement) >= patience:
      logging.info("Early stopping at %s %d: %d validation rounds without improvement.",
                   self.step_label, step, int(self.rounds_without_improvement))
      self.stopped_early.assign(True)
    return value

  def finish(self, step) -> dict:
    """Exports (on the chief) and returns the run's summary.

    A run that never validated a finite loss keeps its last meta-parameters as
    the best. The summary's `meta_params_sha256` is the digest of `final/`.
    """
    if not math.isfinite(float(self.best_validation)):
      for best, current in zip(tf.nest.flatten(self.best_vars), self._flat_meta):
        best.assign(current)
    exports = self.exports()
    if self.is_chief:
      for which, params in exports.items():
        base.export_optimizer(self.save_dir, which, self.rule, params, self.learning_rate)
    validation = [r["validation_loss"] for r in self.metrics.read()
                  if r.get("validation_loss") is not None]
    summary = {self.step_name: step,
               "first_validation_loss": validation[0] if validation else None,
               "last_validation_loss": validation[-1] if validation else None,
               "best_validation_loss": float(self.best_validation)}
    if self.early_stopping:
      summary.update(nonfinite_skips=int(self.nonfinite_skips),
                     diverged_trajectories=int(self.diverged_trajectories),
                     stopped_early=bool(self.stopped_early))
    summary["meta_params_sha256"] = base.digest(exports["final"])
    summary.update(self.summary_extras())
    return summary
