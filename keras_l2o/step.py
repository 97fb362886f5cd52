"""The one formula both paths call: a rule's step on one variable.

`LearnedOptimizer.update_step` assigns `var += delta`; the functional unroll of
the meta-trainers computes `var + delta`. Both get `delta` from `rule_delta`, so
they produce identical parameters (a test asserts it bit for bit).
"""

import inspect

import keras
import tensorflow as tf


def rule_delta(rule, meta_params, grad, var, state, step, learning_rate, loss=None):
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
    loss: the objective at `var` (scalar); passed on only to rules with
      `uses_loss = True`, which require it.

  Returns:
    `(delta, new_state)` with `delta = learning_rate * update` in `var.dtype`
    (for rules with `folds_learning_rate`, the update they return given the
    rate).

  Raises:
    ValueError: if `rule.uses_loss` and `loss` is None.
  """
  compute_dtype = rule.state_dtype(var.dtype)
  grad = tf.cast(grad, compute_dtype)
  value = tf.cast(var, compute_dtype)
  if rule.uses_loss and loss is None:
    raise ValueError(f"Rule {rule.name!r} uses the objective value: pass `loss=` (the "
                     "objective at the current iterate). Received: loss=None")
  return delta_of(rule.apply, rule, meta_params, grad, value, state, step, learning_rate,
                  var.dtype, loss=loss)


def delta_of(apply, rule, meta_params, grad, value, state, step, learning_rate, var_dtype,
             loss=None):
  """`(delta, new_state)` from `apply` (the rule's `apply` or its fused form), in `var_dtype`.

  `grad` and `value` are in the rule's compute dtype already. Passes `loss=` to
  rules that use it and `learning_rate=` to rules that fold it
  (`rule.folds_learning_rate`); multiplies the others' update by the rate.
  """
  compute_dtype = grad.dtype
  kwargs = {}
  if rule.uses_loss:
    kwargs["loss"] = tf.cast(loss, compute_dtype)
  if getattr(rule, "folds_learning_rate", False):
    kwargs["learning_rate"] = _as_rate(learning_rate, compute_dtype)
  update, new_state = apply(meta_params, grad, value, state, step, **kwargs)
  if getattr(rule, "folds_learning_rate", False):
    return tf.cast(update, var_dtype), new_state
  return scaled_delta(update, learning_rate, compute_dtype, var_dtype), new_state


def _as_rate(learning_rate, compute_dtype):
  if isinstance(learning_rate, (int, float)):
    return tf.constant(learning_rate, compute_dtype)  # exact in float64 too
  return tf.cast(learning_rate, compute_dtype)


def scaled_delta(update, learning_rate, compute_dtype, var_dtype):
  """`learning_rate * update` computed in `compute_dtype`, cast to `var_dtype`.

  The last step of every path that applies a rule (`rule_delta`, the XLA fast
  path, the native kernel's `native_delta`), so that they round alike.
  """
  return tf.cast(_as_rate(learning_rate, compute_dtype) * update, var_dtype)


def functional_step(rule, meta_params, grad, var, state, step, learning_rate, loss=None):
  """`(var + delta, new_state)`: the pure form of one optimizer step."""
  delta, new_state = rule_delta(rule, meta_params, grad, var, state, step, learning_rate, loss)
  return var + delta, new_state


def takes_iteration(learning_rate) -> bool:
  """Whether `learning_rate` is a plain callable of one argument (the iteration).

  Keras calls a callable learning rate with no argument and a
  `LearningRateSchedule` with the iteration; keras_l2o also accepts
  `lambda iteration: ...`, called like a schedule.
  """
  if (not callable(learning_rate) or isinstance(learning_rate, keras.Variable)
      or isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)):
    return False
  try:
    parameters = inspect.signature(learning_rate).parameters.values()
  except (TypeError, ValueError):  # no signature (some builtins): Keras's convention
    return False
  return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
             for p in parameters)


def learning_rate_at(learning_rate, iteration):
  """The rate for the step after `iteration` steps: schedules and callables evaluated.

  Args:
    learning_rate: a number, variable, `LearningRateSchedule`, callable of the
      iteration, or callable of no argument.
    iteration: the number of steps already taken (Keras's `iterations`).

  Returns:
    The learning rate (a number or scalar tensor).
  """
  if (isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
      or takes_iteration(learning_rate)):
    return learning_rate(iteration)
  if callable(learning_rate) and not isinstance(learning_rate, keras.Variable):
    return learning_rate()
  return learning_rate
