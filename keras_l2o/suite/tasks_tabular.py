"""Suite tasks on tabular and generated feature data: MLPs and regression."""

import keras
import numpy as np
from sklearn import datasets as sk_datasets

from keras_l2o import datasets
from keras_l2o.suite import base


def _mlp(inputs, widths, activation, outputs, batch_norm=False, dropout=0.0):
  layers = [keras.Input((inputs,))]
  for width in widths:
    layers.append(keras.layers.Dense(width, activation=None if batch_norm else activation))
    if batch_norm:
      layers += [keras.layers.BatchNormalization(), keras.layers.Activation(activation)]
    if dropout:
      layers.append(keras.layers.Dropout(dropout))
  layers.append(keras.layers.Dense(outputs))
  return keras.Sequential(layers)


def _classification(x, y, seed, widths, activation, **kwargs):
  train, validation, test = base.split_arrays(x, y, seed)
  xs = base.standardise(train, validation, test)
  num_classes = int(y.max()) + 1
  model = _mlp(x.shape[1], widths, activation, num_classes, **kwargs)
  return base.Task(model, (xs[0], train[1]), (xs[1], validation[1]), (xs[2], test[1]),
                   keras.losses.SparseCategoricalCrossentropy(from_logits=True), 0, 0,
                   ["accuracy"])


def _regression(x, y, seed, widths, activation):
  train, validation, test = base.split_arrays(x, y.reshape(-1, 1).astype(np.float32), seed)
  xs = base.standardise(train, validation, test)
  mean, std = train[1].mean(), train[1].std()
  ys = [((part[1] - mean) / std).astype(np.float32) for part in (train, validation, test)]
  model = _mlp(x.shape[1], widths, activation, 1)
  return base.Task(model, (xs[0], ys[0]), (xs[1], ys[1]), (xs[2], ys[2]), "mse", 0, 0, [])


@base.register("breast_cancer_mlp_tanh", kind="classification", dataset="breast_cancer",
               architecture="mlp", horizon=1000, batch_size=32)
def breast_cancer_mlp_tanh(seed):
  """Breast cancer (569 x 30, 2 classes): a 64-64 tanh MLP."""
  data = datasets.breast_cancer()
  return _classification(data.x, data.y, seed, (64, 64), "tanh")


@base.register("wine_mlp_deep_gelu", kind="classification", dataset="wine", architecture="mlp",
               horizon=1000, batch_size=16)
def wine_mlp_deep_gelu(seed):
  """Wine (178 x 13, 3 classes): a 4 x 32 GELU MLP."""
  data = datasets.wine()
  return _classification(data.x, data.y, seed, (32, 32, 32, 32), "gelu")


@base.register("moons_mlp_deep_sigmoid", kind="classification", dataset="sklearn.make_moons",
               architecture="mlp", horizon=2000, batch_size=64)
def moons_mlp_deep_sigmoid(seed):
  """Two moons (3,000 points, noise 0.2): a 6 x 16 sigmoid MLP (slow, saturating activations)."""
  x, y = sk_datasets.make_moons(3000, noise=0.2, random_state=seed)
  return _classification(x.astype(np.float32), y.astype(np.int32), seed, (16,) * 6, "sigmoid")


@base.register("classification_mlp_bn_dropout", kind="classification",
               dataset="sklearn.make_classification", architecture="mlp", horizon=2000,
               batch_size=64)
def classification_mlp_bn_dropout(seed):
  """make_classification (4,000 x 40, 4 classes): a 128-128 ReLU MLP with batch norm and dropout."""
  x, y = sk_datasets.make_classification(4000, 40, n_informative=12, n_redundant=8, n_classes=4,
                                         n_clusters_per_class=2, random_state=seed)
  return _classification(x.astype(np.float32), y.astype(np.int32), seed, (128, 128), "relu",
                         batch_norm=True, dropout=0.2)


@base.register("friedman_mlp_silu", kind="regression", dataset="sklearn.make_friedman1",
               architecture="mlp", horizon=2000, batch_size=64)
def friedman_mlp_silu(seed):
  """Friedman #1 regression (4,000 x 10, noise 1): a 64-64 SiLU MLP, mean squared error."""
  x, y = sk_datasets.make_friedman1(4000, 10, noise=1.0, random_state=seed)
  return _regression(x.astype(np.float32), y, seed, (64, 64), "silu")


@base.register("diabetes_mlp_relu", kind="regression", dataset="sklearn.diabetes",
               architecture="mlp", horizon=1000, batch_size=32)
def diabetes_mlp_relu(seed):
  """Diabetes (442 x 10): a 32-unit ReLU MLP, mean squared error on standardised targets."""
  data = sk_datasets.load_diabetes()
  return _regression(data.data.astype(np.float32), data.target, seed, (32,), "relu")
