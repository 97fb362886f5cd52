"""Pure feature functions shared by rules.

Every function here is elementwise (coordinatewise) and differentiable, takes
tensors and Python numbers, and returns tensors of the input's dtype.
"""

import math

import tensorflow as tf


def log_and_sign_paper(grad, p: float = 10.0):
  """Andrychowicz et al. (2016), appendix A: gradient preprocessing.

  For each coordinate g:

      (log|g| / p, sign g)   if |g| >= exp(-p)
      (-1,         exp(p) g) otherwise

  Args:
    grad: gradient tensor of any shape.
    p: the preprocessing constant (10 in the paper).

  Returns:
    A tensor of shape `grad.shape + (2,)`.
  """
  dtype = grad.dtype
  threshold = tf.constant(math.exp(-p), dtype)
  abs_g = tf.abs(grad)
  big = abs_g >= threshold
  # The log is taken of a safe value so that its gradient is finite everywhere.
  safe_abs = tf.where(big, abs_g, tf.ones_like(abs_g))
  first = tf.where(big, tf.math.log(safe_abs) / tf.constant(p, dtype), -tf.ones_like(grad))
  second = tf.where(big, tf.sign(grad), tf.constant(math.exp(p), dtype) * grad)
  return tf.stack([first, second], axis=-1)


def log_and_sign_clamped(grad, k: float = 5.0, eps: float = 1e-10):
  """The `LogAndSign(k)` preprocessing of the authors' public code.

      (max(log(|g| + eps) / k, -1), clip(g exp(k), -1, 1))

  Args:
    grad: gradient tensor of any shape.
    k: the preprocessing constant (5 in the public code).
    eps: added to |g| before the log.

  Returns:
    A tensor of shape `grad.shape + (2,)`.
  """
  dtype = grad.dtype
  log = tf.math.log(tf.abs(grad) + tf.constant(eps, dtype)) / tf.constant(k, dtype)
  first = tf.maximum(log, -tf.ones_like(log))
  second = tf.clip_by_value(grad * tf.constant(math.exp(k), dtype), -1.0, 1.0)
  return tf.stack([first, second], axis=-1)


# Gradients and squared gradients are clipped to this fraction of the dtype's
# largest number before they enter a moving average (`bounded`, `safe_square`).
# Then `ema`'s `value - average` cannot overflow, and no state ever holds inf.
SAFE_FRACTION = 0.25


def ema(average, value, decay: float):
  """Exponential moving average `decay * average + (1 - decay) * value`.

  Written as `average + (value - average) * (1 - decay)`, the form Keras's Adam
  uses, so that hand-designed rules reproduce Keras to the last bit. That form
  gives `inf - inf = NaN` once `value - average` overflows (and Keras's Adam
  stays NaN for good after one gradient above 1.8e19, whose square is inf);
  callers therefore pass values bounded by `bounded` or `safe_square`: with
  `average` and `value` both within `SAFE_FRACTION` of the largest number, the
  difference and the average stay finite.
  """
  return average + (value - average) * tf.constant(1.0 - decay, average.dtype)


def bounded(grad):
  """`grad` clipped to +-`SAFE_FRACTION` x the dtype's largest number (8.5e37 in float32).

  Equal to `grad` for every gradient below that bound, which is every
  gradient a model produces short of overflowing.
  """
  limit = tf.constant(grad.dtype.max * SAFE_FRACTION, grad.dtype)
  return tf.clip_by_value(grad, -limit, limit)


def safe_square(grad):
  """`grad ** 2`, clipped to `SAFE_FRACTION` x the dtype's largest number.

  A finite gradient above about 9e18 (float32) squares to more than that (above
  1.8e19, to inf): a second moment that becomes inf freezes the coordinate (its
  normalised steps are 0 forever) or, in Keras's Adam, turns it NaN at the next
  step (`inf - inf`). Clipped, the second moment is merely huge and decays back.
  Equal to `tf.square(grad)` for every gradient below 9e18.
  """
  return tf.minimum(tf.square(grad), tf.constant(grad.dtype.max * SAFE_FRACTION, grad.dtype))


def mean_below_max(x, axis, keepdims=False):
  """`reduce_mean` clipped like `safe_square` (a sum of huge squares overflows before dividing)."""
  return tf.minimum(tf.reduce_mean(x, axis=axis, keepdims=keepdims),
                    tf.constant(x.dtype.max * SAFE_FRACTION, x.dtype))


def bias_correction(decay: float, step, dtype):
  """`1 - decay ** step`, Adam's bias-correction denominator."""
  return 1.0 - tf.pow(tf.constant(decay, dtype), tf.cast(step, dtype))


def rsqrt_normaliser(second_moment, epsilon: float):
  """`1 / (sqrt(second_moment) + epsilon)`, the RMS normaliser of Adam-like rules."""
  return 1.0 / (tf.sqrt(second_moment) + tf.constant(epsilon, second_moment.dtype))
