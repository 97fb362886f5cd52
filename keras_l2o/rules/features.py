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


def ema(average, value, decay: float):
  """Exponential moving average `decay * average + (1 - decay) * value`, never `inf - inf`.

  Computed as `average + (value - average) * (1 - decay)`, the form Keras's Adam
  uses (so that the hand-designed rules reproduce Keras to the last bit and the
  shipped learned optimizers keep their numbers), wherever that is finite.
  Where `value - average` overflows (two huge values of opposite sign, or an
  infinite average), Keras's form gives `inf - inf = NaN` and the state stays
  NaN for good; there the convex form `decay * average + (1 - decay) * value`
  is used, which stays within the range of its inputs.
  """
  weight = tf.constant(1.0 - decay, average.dtype)
  keras_form = average + (value - average) * weight
  convex_form = average * tf.constant(decay, average.dtype) + value * weight
  return tf.where(tf.math.is_finite(keras_form), keras_form, convex_form)


def safe_square(grad):
  """`grad ** 2`, clipped to the largest finite number of its dtype.

  A finite gradient above sqrt(max) (1.8e19 in float32) squares to inf; a
  second moment that becomes inf freezes the parameter (its normalised steps
  are 0 forever) or, in Keras's Adam, turns it NaN at the next step
  (`inf - inf`). Clipped, the second moment is merely huge and decays back.
  Equal to `tf.square(grad)` for every gradient whose square is finite.
  """
  return tf.minimum(tf.square(grad), tf.constant(grad.dtype.max, grad.dtype))


def bias_correction(decay: float, step, dtype):
  """`1 - decay ** step`, Adam's bias-correction denominator."""
  return 1.0 - tf.pow(tf.constant(decay, dtype), tf.cast(step, dtype))


def rsqrt_normaliser(second_moment, epsilon: float):
  """`1 / (sqrt(second_moment) + epsilon)`, the RMS normaliser of Adam-like rules."""
  return 1.0 / (tf.sqrt(second_moment) + tf.constant(epsilon, second_moment.dtype))
