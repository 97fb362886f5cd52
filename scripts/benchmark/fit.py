"""Section: `model.fit` step time of every optimizer on MLPs and a small conv net.

Per-batch wall times recorded by a Keras callback (`time.perf_counter` in
`on_train_batch_begin/end`) after warm-up steps; jit-off MLPs of at least
`MEMORY_MIN_PARAMS` parameters can run in their own process to report their
peak memory (`subprocess_runner`).
"""

import math
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from . import measure
from . import optimizers
from . import subprocess_runner

INPUT_DIM, NUM_CLASSES = 64, 10
CONV_LABEL = "conv"
CONV_INPUT = (28, 28, 1)
CONV_DISTINCT_BATCHES = 8
# Peak memory is measured (one subprocess per configuration, ~10 s of start-up
# each) for MLPs of at least this many parameters; smaller ones run in process.
MEMORY_MIN_PARAMS = 1_000_000


# ----------------------------------------------------------------- model --
def hidden_width(target_params: int) -> int:
  """Width h of a 64-h-h-10 MLP with about `target_params` parameters.

  Parameters: 64h + h + h*h + h + 10h + 10 = h^2 + 76h + 10.
  """
  a = INPUT_DIM + NUM_CLASSES + 2
  return max(1, int(round((-a + math.sqrt(a * a + 4 * max(target_params - NUM_CLASSES, 0))) / 2)))


def mlp_params(width: int) -> int:
  return width * width + (INPUT_DIM + NUM_CLASSES + 2) * width + NUM_CLASSES


def build_mlp(width: int):
  return keras.Sequential([
      keras.Input((INPUT_DIM,)),
      keras.layers.Dense(width, activation="relu"),
      keras.layers.Dense(width, activation="relu"),
      keras.layers.Dense(NUM_CLASSES),
  ])


def build_conv():
  """A small conv net on 28x28x1 inputs: 3 conv layers (32, 64, 128), global pooling, dense."""
  return keras.Sequential([
      keras.Input(CONV_INPUT),
      keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
      keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
      keras.layers.Conv2D(128, 3, activation="relu"),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(NUM_CLASSES),
  ])


def synthetic_data(num_examples: int, seed: int, input_shape=(INPUT_DIM,)):
  """Gaussian inputs labelled by a random linear teacher (learnable, 10 classes)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(num_examples,) + tuple(input_shape)).astype(np.float32)
  teacher = rng.normal(size=(int(np.prod(input_shape)), NUM_CLASSES)).astype(np.float32)
  y = np.argmax(x.reshape(num_examples, -1) @ teacher, axis=-1).astype(np.int32)
  return x, y


class BatchTimer(keras.callbacks.Callback):
  """Records the wall time of every training batch (perf_counter, begin to end)."""

  def __init__(self, warmup: int, max_seconds: float = 0.0, min_measured: int = 5):
    super().__init__()
    self.warmup = warmup
    self.max_seconds = max_seconds
    self.min_measured = min_measured
    self.times = []
    self._begin = None
    self._measure_start = None

  def on_train_batch_begin(self, batch, logs=None):
    self._begin = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    end = time.perf_counter()
    self.times.append(end - self._begin)
    measured = len(self.times) - self.warmup
    if measured == 1:
      self._measure_start = self._begin
    if (self.max_seconds > 0 and measured >= self.min_measured
        and end - self._measure_start > self.max_seconds):
      self.model.stop_training = True


# ------------------------------------------------------------------ fit --
def fit_benchmark(optimizer: str, size_label: str, target_params: int, *, steps: int,
                  warmup: int, batch_size: int, jit: bool, seed: int,
                  max_seconds: float = 0.0) -> dict:
  """Times `model.fit` steps of one (optimizer, model, jit) configuration.

  `size_label == CONV_LABEL` times the conv net (`target_params` ignored), any
  other label the MLP of about `target_params` parameters.
  """
  keras.backend.clear_session()
  keras.utils.set_random_seed(seed)
  rss_before = measure.maxrss_mb()
  total_steps = warmup + steps
  if size_label == CONV_LABEL:
    width = None
    model = build_conv()
    x, y = synthetic_data(batch_size * CONV_DISTINCT_BATCHES, seed, CONV_INPUT)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat()
    fit_args = dict(x=data, steps_per_epoch=total_steps, shuffle=False)
  else:
    width = hidden_width(target_params)
    model = build_mlp(width)
    x, y = synthetic_data(batch_size * total_steps, seed)
    fit_args = dict(x=x, y=y, batch_size=batch_size, shuffle=False)
  model.compile(optimizer=optimizers.make_optimizer(optimizer),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit)
  timer = BatchTimer(warmup, max_seconds)
  history = model.fit(epochs=1, verbose=0, callbacks=[timer], **fit_args)
  measured = timer.times[warmup:]
  if not measured:
    raise RuntimeError(f"No measured step for {optimizer} at {size_label}.")
  result = {
      "optimizer": optimizer,
      "model": "conv" if size_label == CONV_LABEL else "mlp",
      "size": size_label,
      "params": int(model.count_params()),
      "hidden_width": width,
      "jit": bool(jit),
      "batch_size": batch_size,
      "warmup_steps": warmup,
      "steps_measured": len(measured),
      "first_step_ms": timer.times[0] * 1e3,
      "final_loss": float(history.history["loss"][-1]),
      **measure.stats_ms(measured),
      "peak_rss_mb": None,
      "rss_increase_mb": None,
      "rss_before_model_mb": rss_before,
  }
  if width is not None:
    assert result["params"] == mlp_params(width), (result["params"], mlp_params(width))
  return result


def fit_section(names, models, jit_modes, *, steps: int, warmup: int, batch_size: int,
                seed: int, max_seconds: float, max_state_gb: float, memory: bool):
  """Times every (optimizer, model, jit) configuration, interleaved.

  Args:
    names: optimizer names, `optimizers.REFERENCE` first.
    models: `(label, target parameters)` pairs (`CONV_LABEL` for the conv net).
    jit_modes: the `jit_compile` values to time.
    steps, warmup, batch_size, seed, max_seconds: of `fit_benchmark`.
    max_state_gb: MLP configurations whose optimizer state would be larger are skipped.
    memory: run jit-off MLPs of at least `MEMORY_MIN_PARAMS` parameters in
      their own process and record their peak memory.

  Returns:
    `(results, skipped)`: the results, each with `ratio_to_adam` (its median
    over the reference's of the same model and jit mode), and
    `(name, label, jit, reason)` of the skipped configurations.
  """
  results, skipped = [], []
  for jit in jit_modes:
    for label, target in models:
      for name in names:  # Interleaved, so a drift of the machine hits all alike.
        state_bytes = 4.0 * optimizers.state_floats_per_parameter(name) * target
        if label != CONV_LABEL and state_bytes > max_state_gb * 1e9:
          skipped.append((name, label, jit, f"state {state_bytes / 1e9:.3g} GB > --max_state_gb="
                          f"{max_state_gb}"))
          continue
        spec = dict(optimizer=name, size_label=label, target_params=target, steps=steps,
                    warmup=warmup, batch_size=batch_size, jit=jit, seed=seed,
                    max_seconds=max_seconds)
        t0 = time.perf_counter()
        if memory and not jit and label != CONV_LABEL and target >= MEMORY_MIN_PARAMS:
          result = subprocess_runner.run_child(spec)
        else:
          result = fit_benchmark(name, label, target, steps=steps, warmup=warmup,
                                 batch_size=batch_size, jit=jit, seed=seed,
                                 max_seconds=max_seconds)
        logging.info("fit %-10s %5s jit=%-5s %s params: median %.3f ms [%.3f-%.3f] over %d "
                     "steps (%.1f s)", name, label, jit, f"{result['params']:,}",
                     result["median_ms"], result["p10_ms"], result["p90_ms"],
                     result["steps_measured"], time.perf_counter() - t0)
        results.append(result)
  for r in results:
    ref = next(a for a in results if a["optimizer"] == optimizers.REFERENCE
               and a["size"] == r["size"] and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ms"] / ref["median_ms"]
  return results, skipped


def child_fit(spec: dict) -> dict:
  """`fit_benchmark` of one configuration in a fresh process, with the process's peak memory."""
  result = fit_benchmark(spec["optimizer"], spec["size_label"], spec["target_params"],
                         steps=spec["steps"], warmup=spec["warmup"],
                         batch_size=spec["batch_size"], jit=spec["jit"], seed=spec["seed"],
                         max_seconds=spec["max_seconds"])
  result["peak_rss_mb"] = measure.maxrss_mb()
  result["rss_increase_mb"] = result["peak_rss_mb"] - result["rss_before_model_mb"]
  return result
