"""Shared helpers of the keras_l2o tests: a tiny digits MLP and its data."""

import functools
import json
import os
import subprocess
import sys

import keras
import numpy as np
from sklearn import datasets

# The repository's root (the folder of keras_l2o/, trainers/, scripts/ and tests/): the
# working directory and PYTHONPATH of the commands the tests run as users do.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


_MIRRORED_FIT = r"""
import importlib, json, sys
import numpy as np
from keras_l2o import distribute
strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
import keras, tensorflow as tf, keras_l2o
from keras_l2o import datasets
args = json.loads(sys.argv[1])
owner = importlib.import_module(args["module"])
*path, name = args["attribute"].split(".")
for part in path:
  owner = getattr(owner, part)
calls = []
original = getattr(owner, name)
setattr(owner, name, lambda *a, **k: calls.append(1) or original(*a, **k))
data = datasets.digits()
x, y = data.x[:args["samples"]], data.y[:args["samples"]]

def train(strategy, jit_rule):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)),
                              keras.layers.Dense(args["hidden"], activation="tanh"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras_l2o.LearnedOptimizer(args["rule"], jit_rule=jit_rule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  model.fit(x, y, batch_size=64, epochs=args["epochs"], shuffle=False, verbose=0)
  return model

mirrored = train(strategy, args["jit_rule"])
mirrored_calls = len(calls)
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"), False)
replicas = [[v.numpy() for v in strategy.experimental_local_results(w.value)]
            for w in mirrored.trainable_variables]
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "calls": mirrored_calls,
    "replica_diff": max(float(np.abs(r[0] - r[1]).max()) for r in replicas),
    "relative": [float(np.abs(a.numpy() - b.numpy()).max() / np.abs(b.numpy()).max())
                 for a, b in zip(mirrored.weights, single.weights)],
}))
"""


def mirrored_fit(*, rule, jit_rule, counted, hidden, samples, epochs):
  """Fits a 64-hidden-10 digits MLP in the replicas of a `MirroredStrategy` over 2 logical CPUs.

  Runs in a subprocess (logical devices are fixed at start-up), once with
  `LearnedOptimizer(rule, jit_rule=jit_rule)` in the strategy and once on one
  device with the reference path, and counts the calls of `counted`
  (`"module:attribute.path"`, e.g. `"keras_l2o.step_paths:FastDelta.__call__"`)
  in the first run.

  Returns:
    `{"replicas", "calls", "replica_diff", "relative"}`: the replica count, the
    counted calls, the largest difference between the replicas' weights, and
    per weight max |mirrored - reference| / max |reference|.

  Raises:
    AssertionError: with the subprocess's stderr if it fails.
  """
  module, attribute = counted.split(":")
  args = {"rule": rule, "jit_rule": jit_rule, "module": module, "attribute": attribute,
          "hidden": hidden, "samples": samples, "epochs": epochs}
  root = REPO_ROOT
  env = dict(os.environ, PYTHONPATH=root)
  proc = subprocess.run([sys.executable, "-c", _MIRRORED_FIT, json.dumps(args)],
                        capture_output=True, text=True, timeout=300, env=env, cwd=root,
                        check=False)
  if proc.returncode != 0:
    raise AssertionError(f"mirrored fit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])
