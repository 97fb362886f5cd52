"""The optimizers a benchmark compares: `keras.optimizers.Adam` and every keras_l2o rule."""

import keras
import tensorflow as tf

import keras_l2o
from keras_l2o import step_paths
from keras_l2o.native import lstm_rule as native_lstm

REFERENCE = "keras.Adam"
HAND_DESIGNED_LEARNING_RATE = 1e-3


def make_optimizer(name: str, jit_rule="auto"):
  """`keras.optimizers.Adam(1e-3)` for the reference, else `LearnedOptimizer(name)`.

  Learned rules keep their default learning rate (1.0: the rule as
  meta-trained); hand-designed rules get 1e-3 (the rate does not change timing).

  Example:

  >>> type(make_optimizer(REFERENCE)).__name__, type(make_optimizer("sgd")).__name__
  ('Adam', 'LearnedOptimizer')
  >>> learning_rate_of("sgd"), learning_rate_of("mlp")
  (0.001, 1.0)
  """
  if name == REFERENCE:
    return keras.optimizers.Adam(HAND_DESIGNED_LEARNING_RATE)
  rule = keras_l2o.rules.get(name)
  if rule.is_learned:
    return keras_l2o.LearnedOptimizer(rule, jit_rule=jit_rule)
  return keras_l2o.LearnedOptimizer(rule, learning_rate=HAND_DESIGNED_LEARNING_RATE,
                                    jit_rule=jit_rule)


def learning_rate_of(name: str) -> float:
  """The learning rate `make_optimizer(name)` uses."""
  if name == REFERENCE or not keras_l2o.rules.get(name).is_learned:
    return HAND_DESIGNED_LEARNING_RATE
  return 1.0


def state_floats_per_parameter(name: str) -> int:
  """Floats of optimizer state per parameter (Adam: its m and v)."""
  if name == REFERENCE:
    return 2  # Adam's m and v (amsgrad=False).
  return keras_l2o.rules.get(name).state_floats_per_parameter()


def skip_reason(name: str):
  """Why `name` cannot be benchmarked on arbitrary models, or None."""
  if name != REFERENCE and getattr(keras_l2o.rules.get(name), "uses_loss", False):
    return ("needs the objective value (optimizer.set_loss) and a fixed dimension; "
            "model.fit supplies neither")
  return None


def has_fast_path(name: str) -> bool:
  """Whether `LearnedOptimizer(name)` has a path besides the reference (fused or native)."""
  if name == REFERENCE:
    return False
  rule = keras_l2o.rules.get(name)
  return step_paths.has_fused_form(rule) or native_lstm.supports(rule, tf.float32)
