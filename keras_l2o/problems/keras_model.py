"""Any `keras.Model` with a dataset and a loss as a problem family."""

import random

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o.problems import base
from keras_l2o.problems import mlp


def _get_loss(loss):
  if isinstance(loss, keras.losses.Loss):
    return loss
  message = ("Argument `loss` must be a keras.losses.Loss, a loss function or the name of a "
             f"Keras loss. Received: loss={loss!r}")
  if not isinstance(loss, str) and not callable(loss):
    raise ValueError(message)
  try:
    loss_fn = keras.losses.get(loss)
  except (ValueError, TypeError) as error:
    raise ValueError(message) from error
  if loss_fn is None or not callable(loss_fn):
    raise ValueError(message)
  return loss_fn


def _check_fractions(fractions):
  ok = (isinstance(fractions, (list, tuple)) and len(fractions) == 3 and
        all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0
            for f in fractions) and abs(sum(fractions) - 1.0) < 1e-9)
  if not ok:
    raise ValueError("Argument `split_fractions` must be three positive numbers summing to 1. "
                     f"Received: split_fractions={fractions!r}")
  return tuple(float(f) for f in fractions)


def _materialise(dataset, num_batches):
  """The dataset's equal-sized batches as two numpy arrays `[num_batches, batch, ...]`."""
  if num_batches is None and dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
    raise ValueError("Argument `dataset` is infinite: pass `num_batches` to say how many "
                     "batches to use.")
  xs, ys = [], []
  for x, y in (dataset.take(num_batches) if num_batches else dataset):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or y.ndim == 0 or x.shape[0] != y.shape[0]:
      raise ValueError("Argument `dataset` must be batched: its (x, y) elements need a common "
                       f"leading batch dimension. Received shapes x={x.shape}, y={y.shape}")
    if xs and (x.shape[1:] != xs[0].shape[1:] or y.shape[1:] != ys[0].shape[1:]):
      raise ValueError("Every batch of `dataset` must have the same example shape. Received "
                       f"x={x.shape}, y={y.shape} after x={xs[0].shape}, y={ys[0].shape}")
    xs.append(x)
    ys.append(y)
  if not xs:
    raise ValueError("Argument `dataset` is empty.")
  batch_size = xs[0].shape[0]
  if len(xs) > 1 and xs[-1].shape[0] != batch_size:
    logging.info("Dropping the last, smaller batch (%d of %d examples).", xs[-1].shape[0],
                 batch_size)
    xs, ys = xs[:-1], ys[:-1]
  if any(x.shape[0] != batch_size for x in xs):
    raise ValueError("Argument `dataset` must have batches of one size (except the last). "
                     f"Received sizes {[x.shape[0] for x in xs]}")
  return np.stack(xs), np.stack(ys)


class KerasModelFamily(base.ProblemFamily):
  """Training a `keras.Model` on minibatches of a dataset, as a problem family.

  The dataset's batches are read once (at most `num_batches`; a smaller last
  batch is dropped), shuffled with `seed` and cut into disjoint train /
  validation / test groups of batches by `split_fractions`. A problem of a
  split draws, at each step, one batch of that split's group (stateless in
  problem and step). Its initial parameters are the model's trainable weights
  re-initialised from the problem's seed (a clone of the model built under
  `keras.utils.set_random_seed`; this sets TensorFlow's global seed as a side
  effect, while Python's and NumPy's global random states are restored), or
  with `reinitialize=False` the model's weights at construction, for every
  problem. Initializers with a fixed `seed` give every problem the same values.

  The loss is evaluated with `model.stateless_call(params, state, x,
  training=True)`; the non-trainable weights `state` (e.g. BatchNorm moving
  statistics, dropout seed states) stay at their initial values throughout:
  their updates are discarded. The model itself is never modified.
  `get_config()` holds the scalar options only, not the model, dataset or loss.

  Args:
    model: a `keras.Model`; built from the first batch if it is not built.
    dataset: a batched `tf.data.Dataset` of `(x, y)` pairs.
    loss: a `keras.losses.Loss`, a loss function `(y_true, y_pred)`, or a
      Keras loss name (`keras.losses.get`); it is averaged over the batch.
    seed: family seed: problems are drawn from (seed, split, index) and the
      batches are shuffled into the three groups with it.
    num_batches: the number of batches to read (all if None).
    horizon: default number of optimizer steps.
    reinitialize: re-initialise the weights per problem (else use the model's).
    split_fractions: the fractions of batches for train, validation and test.

  Raises:
    ValueError: for a non-model, a dataset that is not batched `(x, y)` pairs,
      an unknown loss, or too few batches for every split to get one.

  Example:

  >>> import keras, numpy as np, tensorflow as tf
  >>> from keras_l2o import problems
  >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
  >>> x, y = np.ones((40, 4), np.float32), np.zeros((40,), np.int32)
  >>> data = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
  >>> family = problems.KerasModelFamily(
  ...     model, data, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  >>> p = family.sample("train", 0)
  >>> params = family.init_params(p.tensors)
  >>> family.losses(p.tensors, params, family.batch(p.tensors, 0)).shape
  TensorShape([1])
  """

  name = "keras_model"

  def __init__(self, model, dataset, loss, *, seed: int = 0, num_batches: int = None,
               horizon: int = 100, reinitialize: bool = True,
               split_fractions=(0.6, 0.2, 0.2)):
    if not isinstance(model, keras.Model):
      raise ValueError(f"Argument `model` must be a keras.Model. Received: model={model!r}")
    if not isinstance(dataset, tf.data.Dataset):
      raise ValueError("Argument `dataset` must be a tf.data.Dataset. Received: "
                       f"dataset={dataset!r}")
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and
            all(isinstance(s, tf.TensorSpec) for s in spec)):
      raise ValueError("Argument `dataset` must yield (x, y) pairs of tensors. Received: "
                       f"element_spec={spec!r}")
    self._loss_fn = _get_loss(loss)
    if num_batches is not None:
      num_batches = mlp.check_positive_int("num_batches", num_batches)
    horizon = mlp.check_positive_int("horizon", horizon)
    if not isinstance(reinitialize, bool):
      raise ValueError("Argument `reinitialize` must be a bool. Received: "
                       f"reinitialize={reinitialize!r}")
    split_fractions = _check_fractions(split_fractions)
    super().__init__(seed, num_batches=num_batches, horizon=horizon, reinitialize=reinitialize,
                     split_fractions=split_fractions)
    self.model, self.reinitialize, self.default_horizon = model, reinitialize, horizon
    x, y = _materialise(dataset, num_batches)
    self._first_x = x[0]
    if not model.built:
      model(x[0])
    if not model.trainable_variables:
      raise ValueError(f"Argument `model` has no trainable weights. Received: model={model!r}")
    self._build_groups(x, y, split_fractions)
    self._weights = self._current_values(model)

  def _build_groups(self, x, y, fractions):
    n = len(x)
    held_out = [max(1, int(round(f * n))) for f in fractions[1:]]
    counts = [n - sum(held_out), *held_out]
    if min(counts) < 1:
      raise ValueError(
          f"Every split needs at least one batch, but the {n} batches of `dataset` split by "
          f"split_fractions={fractions} give {dict(zip(base.SPLITS, counts))}. Use more "
          "batches (a smaller batch size or a larger `num_batches`) or other fractions.")
    order = np.random.default_rng(self.seed).permutation(n)
    self._x = tf.Variable(x[order], trainable=False, name="batches_x")
    self._y = tf.Variable(y[order], trainable=False, name="batches_y")
    self._ranges, offset = {}, 0
    for split, count in zip(base.SPLITS, counts):
      self._ranges[split] = (offset, count)
      offset += count

  def data_range(self, split: str):
    """`(offset, number)` of `split`'s batches in the stored `[num_batches, ...]` arrays."""
    if split not in base.SPLITS:
      raise ValueError(f"Unknown split {split!r}. Valid splits: {list(base.SPLITS)}.")
    return self._ranges[split]

  @staticmethod
  def _current_values(model):
    return ([np.asarray(v.numpy()) for v in model.trainable_variables],
            [np.asarray(v.numpy()) for v in model.non_trainable_variables])

  def _reinitialized_values(self, seed):
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
      keras.utils.set_random_seed(seed)
      clone = keras.models.clone_model(self.model)
      if not clone.built:
        clone(self._first_x)
    except Exception as error:  # pylint: disable=broad-except
      raise ValueError(f"Could not clone the model to re-initialise its weights ({error}). "
                       "Pass reinitialize=False to use its current weights.") from error
    finally:
      random.setstate(python_state)
      np.random.set_state(numpy_state)
    values = self._current_values(clone)
    expected = [tuple(v.shape) for v in self.model.trainable_variables]
    if [v.shape for v in values[0]] != expected:
      raise ValueError("The clone of the model has different trainable weights "
                       f"{[v.shape for v in values[0]]} from the model's {expected}.")
    return values

  def _sample_tensors(self, split, rng, seed):
    with tf.init_scope():
      trainable, non_trainable = (self._reinitialized_values(seed) if self.reinitialize
                                  else self._weights)
      offset, size = self.data_range(split)
      tensors = {f"param_{i}": tf.constant(v) for i, v in enumerate(trainable)}
      tensors.update({f"state_{i}": tf.constant(v) for i, v in enumerate(non_trainable)})
      tensors.update(batch_seed=tf.constant(seed, tf.int64),
                     data_offset=tf.constant(offset, tf.int64),
                     data_size=tf.constant(size, tf.int64))
    return tensors

  def init_params(self, tensors):
    return [tf.identity(tensors[f"param_{i}"])
            for i in range(len(self.model.trainable_variables))]

  def batch_index(self, tensors, step):
    """The index (into the stored batches) of the batch of `step`."""
    return base.batch_indices(tensors["batch_seed"], step, tensors["data_size"],
                              tensors["data_offset"], 1)[0]

  def batch(self, tensors, step):
    index = self.batch_index(tensors, step)
    return tf.gather(self._x, index), tf.gather(self._y, index)

  def losses(self, tensors, params, batch):
    x, y = batch
    variables = self.model.trainable_variables
    trainable = [tf.cast(p, v.dtype) for p, v in zip(params, variables)]
    non_trainable = [tensors[f"state_{i}"] for i in range(len(self.model.non_trainable_variables))]
    y_pred, _ = self.model.stateless_call(trainable, non_trainable, x, training=True)
    loss = tf.reduce_mean(self._loss_fn(y, y_pred))
    return tf.reshape(tf.cast(loss, params[0].dtype), [1])
