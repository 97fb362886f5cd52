"""Shared helpers of the keras_l2o tests: a tiny digits MLP and its data."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import functools  # pylint: disable=g-import-not-at-top,wrong-import-position

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from sklearn import datasets  # pylint: disable=g-import-not-at-top,wrong-import-position


@functools.lru_cache(maxsize=None)
def _digits():
  data = datasets.load_digits()  # Bundled with scikit-learn: no download.
  return (data.data / 16.0).astype(np.float32), data.target.astype(np.int32)


def digits(num_samples=256):
  """The first `num_samples` digits: inputs `[n, 64]` in [0, 1], labels `[n]`."""
  x, y = _digits()
  return x[:num_samples].copy(), y[:num_samples].copy()


def digits_mlp(seed=0, hidden=16, dtype=None):
  """A 64 -> hidden (relu) -> 10 logits MLP with weights drawn from `seed`."""
  keras.utils.set_random_seed(seed)
  return keras.Sequential([
      keras.Input((64,)),
      keras.layers.Dense(hidden, activation="relu", dtype=dtype),
      keras.layers.Dense(10, dtype=dtype),
  ])


def loss_fn():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_and_fit(model, optimizer, *, epochs=4, num_samples=256, batch_size=32,
                    jit_compile=False, loss=None, x=None, y=None, build_first=False):
  """Compiles `model` with `optimizer` and fits it (no shuffling); returns the epoch losses.

  `build_first=True` builds the optimizer before `fit`, which otherwise builds
  it while tracing the train function and then traces that a second time.
  """
  if x is None:
    x, y = digits(num_samples)
  model.compile(optimizer=optimizer, loss=loss or loss_fn(), jit_compile=jit_compile)
  if build_first:  # (`model.optimizer`: compile may wrap `optimizer` in a LossScaleOptimizer)
    model.optimizer.build(model.trainable_variables)
  history = model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
  return history.history["loss"]


def weights_of(model):
  """All weights of `model` as float64 numpy arrays."""
  return [np.asarray(keras.ops.convert_to_numpy(w), np.float64) for w in model.weights]


def max_abs_diff(weights_a, weights_b):
  """The largest absolute difference between two lists of arrays of equal shapes."""
  assert len(weights_a) == len(weights_b), (len(weights_a), len(weights_b))
  return max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
             for a, b in zip(weights_a, weights_b))
