"""The lstm rule's step through the native kernel `lstm_rule_op.cc`.

`native_delta` is `keras_l2o.step.rule_delta` for an `LSTMRule`, computed by
one CPU kernel instead of ~30 TensorFlow ops: 4-5x faster on a 1M-parameter
variable on 2 cores (docs/PERFORMANCE.md). It is the same function up to
rounding: the matmul sums in another order and sigmoid and tanh are the
kernel's own, a few float ulp from TensorFlow's (tests/native/test_native_lstm.py
bounds the difference). Like the XLA fast path it only *applies* the rule: it
has no gradient. Meta-training differentiates the rule's layers through a
second kernel, `keras_l2o.native.lstm_cells`.

`apply_in_place` is the same kernel on the optimizer's variables: it writes
the new state over the old one and adds `learning_rate * update` to the
variable, in one pass and without allocating (10% faster again at 1M
parameters). `LearnedOptimizer` uses it for lstm rules by default
(`jit_rule="auto"` or `True`) when `supports_in_place` says so, else
`native_delta` when `supports` does; `jit_rule=False` keeps the reference.

Example:

>>> import numpy as np, tensorflow as tf, keras_l2o
>>> from keras_l2o import step
>>> from keras_l2o.native import lstm_rule
>>> rule = keras_l2o.rules.get("lstm")
>>> grad, var = tf.constant(np.linspace(-1e-3, 1e-3, 7), tf.float32), tf.zeros([7])
>>> if lstm_rule.supports(rule, var.dtype):
...   meta, state = rule.init_meta_params(0), rule.init_state(var)
...   native, _ = lstm_rule.native_delta(rule, meta, grad, var, state, 1, 1.0)
...   reference, _ = step.rule_delta(rule, meta, grad, var, state, 1, 1.0)
...   assert np.allclose(native, reference, rtol=1e-5, atol=1e-9)
"""

import tensorflow as tf

from keras_l2o import step as step_lib
from keras_l2o.native import library
from keras_l2o.rules import lstm

KERNEL = "lstm_rule"
# Hidden sizes the kernel's register layout handles (the paper's is 20).
HIDDEN_SIZES = (4, 16, 20)


def supports(rule, var_dtype) -> bool:
  """Whether the native kernel computes `rule`'s step for a variable of `var_dtype`.

  True for an `LSTMRule` with at least one layer and a hidden size in
  `HIDDEN_SIZES`, computing in float32 (float32 variables, and half-precision
  ones, whose rule state is float32), once the kernel is built and loaded.
  """
  return (isinstance(rule, lstm.LSTMRule) and rule.num_layers >= 1
          and rule.hidden_size in HIDDEN_SIZES
          and rule.state_dtype(tf.as_dtype(var_dtype)) == tf.float32
          and library.available(KERNEL))


def _meta_inputs(rule, meta_params) -> dict:
  """The meta-parameter inputs and the attributes both ops take, as keyword arguments."""
  layers = [meta_params[f"layer{i}"] for i in range(1, rule.num_layers + 1)]
  return {
      "kernels": [tf.cast(p["kernel"], tf.float32) for p in layers],
      "biases": [tf.cast(p["bias"], tf.float32) for p in layers],
      "out_kernel": tf.reshape(tf.cast(meta_params["output"]["kernel"], tf.float32), [-1]),
      "out_bias": tf.reshape(tf.cast(meta_params["output"]["bias"], tf.float32), [-1]),
      "preprocessing": rule.preprocessing,
      "preprocess_constant": rule.preprocess_constant,
      "output_scale": rule.output_scale,
  }


def native_delta(rule, meta_params, grad, var, state, step, learning_rate):
  """`rule_delta(rule, ...)` computed by the native kernel; see `supports`.

  Returns:
    `(delta, new_state)` as `keras_l2o.step.rule_delta` returns them.
  """
  del step  # the lstm rule does not read it
  if not supports(rule, var.dtype):
    raise ValueError(f"The native lstm kernel does not compute this step (rule "
                     f"{rule.name!r} with config {rule.get_config()}, variable dtype "
                     f"{tf.as_dtype(var.dtype).name}, kernel built: "
                     f"{library.available(KERNEL)}). Check "
                     "`keras_l2o.native.lstm_rule.supports` first.")
  grad = tf.cast(grad, tf.float32)
  update, new_state = library.load(KERNEL).keras_l2o_lstm_rule_apply(
      tf.reshape(grad, [-1]), [tf.convert_to_tensor(s) for s in state],
      **_meta_inputs(rule, meta_params))
  update = tf.reshape(update, tf.shape(grad))
  delta = step_lib.scaled_delta(update, learning_rate, tf.float32, var.dtype)
  return delta, type(state)(*new_state)


def supports_in_place(rule, variable) -> bool:
  """Whether `apply_in_place` computes `rule`'s step on `variable`.

  As `supports`, for a float32 variable outside any `tf.distribute` strategy
  (in a strategy the optimizer's variables are distributed values; there
  `native_delta` and Keras's assignments run instead).
  """
  return (tf.as_dtype(variable.dtype) == tf.float32 and not tf.distribute.has_strategy()
          and supports(rule, variable.dtype))


def apply_in_place(rule, meta_params, grad, variable, state_variables, learning_rate):
  """One step of `rule` on `variable`, in place: the optimizer's `update_step` in one op.

  `variable += learning_rate * update` and the state variables get the new
  state, with the values `native_delta` computes (bit for bit) and the
  variable rounded as `variable.assign_add(delta)` rounds it. A variable
  buffer that an earlier read still holds is replaced, not overwritten.

  Args:
    rule: an `LSTMRule` (see `supports_in_place`).
    meta_params: the rule's meta-parameters.
    grad: dense gradient, shaped like `variable`.
    variable: the float32 variable to update.
    state_variables: its state, one variable per field of `rule.init_state`.
    learning_rate: scalar multiplying the rule's output.

  Returns:
    The op (None when executed eagerly).
  """
  if not supports_in_place(rule, variable):
    raise ValueError(f"The native lstm kernel does not update this variable in place (rule "
                     f"{rule.name!r} with config {rule.get_config()}, variable dtype "
                     f"{tf.as_dtype(variable.dtype).name}, in a tf.distribute strategy: "
                     f"{tf.distribute.has_strategy()}). Check `supports_in_place` first.")
  return library.load(KERNEL).keras_l2o_lstm_rule_resource_apply(
      variable.handle, [s.handle for s in state_variables],
      tf.reshape(tf.cast(grad, tf.float32), [-1]), tf.cast(learning_rate, tf.float32),
      **_meta_inputs(rule, meta_params))
