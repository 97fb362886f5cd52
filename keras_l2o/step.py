"""The one formula both paths call: a rule's step on one variable.

`LearnedOptimizer.update_step` assigns `var += delta`; the functional unroll of
the meta-trainers computes `var + delta`. Both get `delta` from `rule_delta`, so
they produce identical parameters (a test asserts it bit for bit).
"""

import tensorflow as tf


def rule_delta(rule, meta_params, grad, var, state, step, learning_rate):
  """Applies `rule` once and returns the change of the variable and the new state.

  The rule computes in `rule.state_dtype(var.dtype)` (float32 for half-precision
  variables); the change is cast back to the variable's dtype.

  Args:
    rule: a `keras_l2o.rules.Rule`.
    meta_params: the rule's meta-parameters (nested dict of tensors).
    grad: dense gradient, shaped like `var`.
    var: the current value of the variable (tensor or variable).
    state: the rule's state for this variable.
    step: 1-based index of the update.
    learning_rate: scalar multiplying the rule's output.

  Returns:
    `(delta, new_state)` with `delta = learning_rate * update` in `var.dtype`.
  """
  compute_dtype = rule.state_dtype(var.dtype)
  grad = tf.cast(grad, compute_dtype)
  value = tf.cast(var, compute_dtype)
  update, new_state = rule.apply(meta_params, grad, value, state, step)
  if isinstance(learning_rate, (int, float)):
    learning_rate = tf.constant(learning_rate, compute_dtype)  # exact in float64 too
  delta = tf.cast(tf.cast(learning_rate, compute_dtype) * update, var.dtype)
  return delta, new_state


def functional_step(rule, meta_params, grad, var, state, step, learning_rate):
  """`(var + delta, new_state)`: the pure form of one optimizer step."""
  delta, new_state = rule_delta(rule, meta_params, grad, var, state, step, learning_rate)
  return var + delta, new_state
