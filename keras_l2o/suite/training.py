"""One training run of a suite task through Keras's own `model.fit`.

The run compiles the task's model with the optimizer, as a user would, and fits
it for exactly `horizon` steps on an endlessly reshuffled `tf.data` pipeline of
the training data. It logs `windows` points: each is one Keras epoch of
`horizon / windows` steps (one `steps_per_execution` call), and Keras's epoch
loss is the mean batch loss over it. A non-finite loss stops the run
(`keras.callbacks.TerminateOnNaN`); the rest of the curve is then NaN.
"""

import math
import time

import keras
import numpy as np
import tensorflow as tf

from keras_l2o.suite import environment

DEFAULT_WINDOWS = 40
_EVAL_BATCH = 512
_INITIAL_EXAMPLES = 2048


class _WindowLosses(keras.callbacks.Callback):
  """Keeps Keras's epoch loss: the mean batch loss over each window."""

  def __init__(self):
    super().__init__()
    self.losses = []

  def on_epoch_end(self, epoch, logs=None):
    self.losses.append(float((logs or {}).get("loss", math.nan)))


def _pipeline(train, batch_size, seed):
  data = tf.data.Dataset.from_tensor_slices(train)
  data = data.shuffle(len(train[0]), seed=seed, reshuffle_each_iteration=True).repeat()
  return data.batch(batch_size, drop_remainder=True).prefetch(2)


def _evaluate(model, part):
  values = model.evaluate(part[0], part[1], batch_size=_EVAL_BATCH, verbose=0, return_dict=True)
  return {k: float(v) for k, v in values.items()}


def run(spec, seed, optimizer, windows=DEFAULT_WINDOWS, batch_size=None, horizon=None) -> dict:
  """Trains task `spec` from `seed` with `optimizer`; returns the run's record.

  Args:
    spec: a `keras_l2o.suite.TaskSpec`.
    seed: seeds the data, the initial weights and the batch order.
    optimizer: a fresh Keras optimizer, or `make(horizon)` returning one.
    windows: logged points (the horizon must be a multiple of it).
    batch_size: overrides the task's batch size (smoke tests).
    horizon: overrides the task's horizon (smoke tests).

  Returns:
    A dict: `curve` (window mean losses), `initial_loss` (training-data loss at
    the initial weights), `validation` / `test` / `train_eval` (Keras
    `evaluate` dicts at the end: `loss` and the task's metrics), `stopped`
    (True if a non-finite loss ended the run), `seconds` (wall),
    `cpu_seconds` (process CPU time, all threads: what the run costs on an idle
    machine) and `environment` (`keras_l2o.suite.environment.describe()`: the
    code, versions and threads the numbers depend on besides the seed).

  Raises:
    ValueError: if the horizon is not a multiple of `windows`.
  """
  keras.utils.set_random_seed(int(seed))
  task = spec.build(seed, batch_size=batch_size)
  horizon = int(horizon or task.horizon)
  if horizon % windows:
    raise ValueError(f"Task {spec.name!r}: its horizon {horizon} must be a multiple of windows="
                     f"{windows}.")
  if callable(optimizer) and not isinstance(optimizer, keras.optimizers.Optimizer):
    optimizer = optimizer(horizon)
  per_window = horizon // windows
  task.model.compile(optimizer=optimizer, loss=task.loss, metrics=list(task.metrics),
                     steps_per_execution=per_window)
  start, cpu_start = time.time(), time.process_time()
  initial = _evaluate(task.model, tuple(a[:_INITIAL_EXAMPLES] for a in task.train))["loss"]
  recorder = _WindowLosses()
  task.model.fit(_pipeline(task.train, task.batch_size, int(seed)), epochs=windows,
                 steps_per_epoch=per_window, verbose=0, shuffle=False,
                 callbacks=[recorder, keras.callbacks.TerminateOnNaN()])
  curve = recorder.losses + [math.nan] * (windows - len(recorder.losses))
  stopped = not np.all(np.isfinite(curve))
  record = {"curve": curve, "initial_loss": initial, "stopped": bool(stopped),
            "horizon": horizon, "batch_size": task.batch_size,
            "environment": environment.describe()}
  for name, part in (("train_eval", task.train), ("validation", task.validation),
                     ("test", task.test)):
    record[name] = {} if stopped else _evaluate(task.model, part)
  record["seconds"] = time.time() - start
  record["cpu_seconds"] = time.process_time() - cpu_start  # all threads; independent of load
  return record
