"""Gradient descent (optionally with heavy-ball momentum) whose step size is learned.

The smallest learned rule: one meta-parameter, the natural log of the step
size,

    m <- momentum * m - grad;   update = exp(log_learning_rate) * m

(with `momentum=0` it is plain SGD, `update = -exp(log_learning_rate) * grad`).
It exists to study meta-training itself: the best step size for a horizon can
be found by a grid search, so a meta-trainer's answer can be checked against
it (short-horizon bias, Wu et al. 2018), and on a quadratic the exact
meta-gradient has a closed form (the PES unbiasedness test).
"""

import math

import tensorflow as tf

from keras_l2o.rules import base

LearnedLRState = base.declare_state("LearnedLRState", momentum=None)


class LearnedLRRule(base.Rule):
  """SGD / heavy-ball momentum with a learned step size.

  Args:
    momentum: decay of the velocity, in [0, 1); 0 is plain SGD.
    initial_learning_rate: the step size before meta-training (> 0).

  Example:

  >>> import keras_l2o, tensorflow as tf
  >>> rule = keras_l2o.rules.get("learned_lr", initial_learning_rate=0.1)
  >>> meta = rule.init_meta_params(0)
  >>> update, _ = rule.apply(meta, tf.constant([2.0]), tf.constant([0.0]),
  ...                        rule.init_state(tf.zeros([1])), 1)
  >>> round(float(update[0]), 6)
  -0.2
  """

  name = "learned_lr"
  state_type = LearnedLRState

  def __init__(self, *, momentum: float = 0.0, initial_learning_rate: float = 0.01):
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
        0.0 <= momentum < 1.0):
      raise ValueError(f"Argument `momentum` must be a number in [0, 1). Received: "
                       f"momentum={momentum!r}")
    if isinstance(initial_learning_rate, bool) or not isinstance(
        initial_learning_rate, (int, float)) or not initial_learning_rate > 0:
      raise ValueError("Argument `initial_learning_rate` must be a positive number. Received: "
                       f"initial_learning_rate={initial_learning_rate!r}")
    self.momentum = float(momentum)
    self.initial_learning_rate = float(initial_learning_rate)

  def meta_param_shapes(self) -> dict:
    return {"log_learning_rate": ()}

  def init_meta_params(self, seed: int) -> dict:
    del seed  # deterministic
    return {"log_learning_rate": tf.constant(math.log(self.initial_learning_rate), tf.float32)}

  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step):
    del var, step
    m = state.momentum * tf.constant(self.momentum, grad.dtype) - grad
    scale = tf.exp(tf.cast(meta_params["log_learning_rate"], grad.dtype))
    return scale * m, LearnedLRState(m)
