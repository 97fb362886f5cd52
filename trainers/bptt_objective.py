"""The meta-objective of one BPTT truncation: its time weights and its loss forms."""

import numpy as np
import tensorflow as tf

from keras_l2o import unroll as unroll_lib
from . import truncation_config

META_OBJECTIVES = truncation_config.META_OBJECTIVES
TIME_WEIGHTS = ("uniform", "increasing", "final")


def time_weights(kind: str, length: int) -> np.ndarray:
  """The weights w_1..w_T of the meta-loss over one truncation."""
  if kind == "uniform":
    return np.ones(length)
  if kind == "increasing":
    return np.arange(1, length + 1) / length
  if kind == "final":
    return np.eye(length)[-1]
  raise ValueError(f"Unknown time weights {kind!r}. Valid: {list(TIME_WEIGHTS)}.")


def meta_loss(losses, final_loss, weights, objective: str = "sum", eps: float = 1e-12):
  """The meta-objective of one truncation.

  Args:
    losses: `[T]` losses before each update (`losses[0]` does not depend on
      this truncation's updates).
    final_loss: the loss after the last update.
    weights: `[T]` weights of f(theta_1) .. f(theta_T).
    objective: `"sum"`: sum_t w_t f(theta_t) / sum_t w_t; `"log_ratio"`:
      sum_t w_t (log f(theta_t) - log f(theta_0)) / sum_t w_t, which is
      invariant to the scale of f (Wichrowska et al. 2017).
    eps: added inside the logs.

  Returns:
    A scalar.
  """
  after = unroll_lib.losses_after_updates(losses, final_loss)
  weights = tf.cast(weights, after.dtype)
  if objective == "sum":
    values = after
  elif objective == "log_ratio":
    start = tf.stop_gradient(losses[0])
    values = tf.math.log(after + eps) - tf.math.log(start + eps)
  else:
    raise ValueError(f"Unknown meta objective {objective!r}. Valid: {list(META_OBJECTIVES)}.")
  return tf.reduce_sum(weights * values) / tf.reduce_sum(weights)
