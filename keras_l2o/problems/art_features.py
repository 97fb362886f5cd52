"""Feature networks and Gram matrices of the `neural_art` style losses.

The default feature network is a small fixed convolutional network whose
weights are drawn from a seed and never trained. No pretrained VGG can be
loaded offline, and random convolutional features are a documented choice for
texture synthesis: Ustyuzhaninov et al. (2017, "What does it take to generate
natural textures?", ICLR) show that Gram-matrix losses on the features of
random, untrained conv layers already synthesise natural-looking textures.
A user can pass a Keras model of their own instead (`KerasFeatureNet`, e.g. a
saved VGG): any model mapping `[batch, h, w, 3]` images in [0, 1] to one
feature map or a list of them.
"""

import numpy as np
import tensorflow as tf

# Mixed into the family seed to draw the feature network's weights.
FEATURE_SALT = 1_000_081


def gram_matrix(features):
  """Gram matrices of feature maps, normalised by the number of positions.

  Args:
    features: `[batch, height, width, channels]`.

  Returns:
    `[batch, channels, channels]`: `G[b, i, j] = sum_{h,w} F[b,h,w,i] F[b,h,w,j] / (h w)`.
  """
  shape = tf.shape(features)
  positions = tf.cast(shape[1] * shape[2], features.dtype)
  return tf.einsum("bhwi,bhwj->bij", features, features) / positions


class RandomFeatureNet:
  """A fixed conv net, `[conv (SAME) -> ReLU]` per layer, weights drawn from a seed.

  Kernels are He-normal, N(0, 2 / fan_in), biases zero; the input is centred
  (`image - 0.5`). Every layer's activation is one feature map. The default
  kernel side, 4, is a multiple of the strides, which keeps the gradient with
  respect to the image free of the checkerboard pattern that 3x3 kernels of
  stride 2 leave.

  Args:
    seed: the weights are drawn from `np.random.default_rng([seed, FEATURE_SALT])`.
    channels: output channels of each layer.
    strides: stride of each layer (same length as `channels`).
    kernel_size: side of the square kernels.

  Example:

  >>> import tensorflow as tf
  >>> net = RandomFeatureNet(seed=0)
  >>> [tuple(f.shape) for f in net(tf.zeros([1, 64, 64, 3]))]
  [(1, 64, 64, 16), (1, 32, 32, 32), (1, 16, 16, 32)]
  """

  def __init__(self, seed: int, channels=(16, 32, 32), strides=(1, 2, 2), kernel_size: int = 4):
    if len(channels) != len(strides):
      raise ValueError(f"`channels` and `strides` must have the same length. Received: "
                       f"channels={channels!r}, strides={strides!r}")
    rng = np.random.default_rng([int(seed), FEATURE_SALT])
    self.kernels, self.strides, in_channels = [], tuple(int(s) for s in strides), 3
    for out_channels in channels:
      fan_in = kernel_size * kernel_size * in_channels
      kernel = np.sqrt(2.0 / fan_in) * rng.standard_normal(
          (kernel_size, kernel_size, in_channels, out_channels))
      self.kernels.append(tf.constant(kernel, tf.float32))
      in_channels = out_channels

  @property
  def num_layers(self) -> int:
    return len(self.kernels)

  def __call__(self, images):
    """`[batch, h, w, 3]` images -> the list of every layer's feature map."""
    h, features = images - tf.constant(0.5, images.dtype), []
    for kernel, stride in zip(self.kernels, self.strides):
      h = tf.nn.relu(tf.nn.conv2d(h, tf.cast(kernel, h.dtype), strides=stride, padding="SAME"))
      features.append(h)
    return features


class KerasFeatureNet:
  """A user's Keras model (a `.keras` file) as a feature network.

  Args:
    path: a file `keras.models.load_model` reads; the model takes
      `[batch, h, w, 3]` images in [0, 1] and returns one feature map
      `[batch, h', w', c]` or a list of them. Its weights stay fixed.

  Raises:
    ValueError: if the model does not return rank-4 feature maps.
  """

  def __init__(self, path: str):
    import keras  # pylint: disable=g-import-not-at-top
    self.model = keras.models.load_model(path, compile=False)
    self.model.trainable = False
    probe = self(tf.zeros([1, 32, 32, 3]))
    bad = [tuple(f.shape) for f in probe if f.shape.rank != 4]
    if bad:
      raise ValueError(f"The feature network {path!r} must return [batch, h, w, c] feature maps; "
                       f"it returned shapes {bad}.")
    self.num_layers = len(probe)

  def __call__(self, images):
    dtype = images.dtype
    outputs = self.model(tf.cast(images, self.model.compute_dtype), training=False)
    if not isinstance(outputs, (list, tuple)):
      outputs = [outputs]
    return [tf.cast(f, dtype) for f in outputs]
