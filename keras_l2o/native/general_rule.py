"""The `general` rule's step with its per-coordinate part in the native kernel `general_direction_op.cc`.

For a matrix, `GeneralRule.direction` (the new accumulators, the 21
scale-free channels and the per-coordinate MLP) is ~60 TensorFlow ops that
stream [15, ..., r, c] tensors through memory; the kernel computes the same
function in three passes over the matrix (on a 950 x 950 kernel on 2 busy
cores: see docs/PERFORMANCE.md). Newton–Schulz, the RMS normalisation and the
vectors' Adam-like path stay the rule's own TensorFlow code
(`GeneralRule.finish`, `GeneralRule.apply`), so `apply` here is the rule's
`apply` with one part computed natively: the same function up to rounding
(the MLP's sums in another order, the reductions in double;
tests/native/test_native_general.py bounds the difference). Like the lstm rule's
kernel it only *applies* the rule (no gradient): `LearnedOptimizer` uses it in
`model.fit` (`jit_rule="auto"` or `True`, on CPU), meta-training keeps the
reference.

Example:

>>> import numpy as np, tensorflow as tf, keras_l2o
>>> from keras_l2o import step
>>> from keras_l2o.native import general_rule
>>> rule = keras_l2o.rules.get("general")
>>> rng = np.random.default_rng(0)
>>> grad, var = (tf.constant(rng.normal(size=(6, 5)), tf.float32) for _ in range(2))
>>> if general_rule.supports(rule, var.dtype):
...   meta, state = rule.init_meta_params(0), rule.init_state(var)
...   native, _ = general_rule.native_delta(rule, meta, grad, var, state, 1, 1.0)
...   reference, _ = step.rule_delta(rule, meta, grad, var, state, 1, 1.0)
...   assert np.allclose(native, reference, rtol=1e-4, atol=1e-8)
"""

import functools

import numpy as np
import tensorflow as tf

from keras_l2o import step as step_lib
from keras_l2o.native import library
from keras_l2o.rules import base
from keras_l2o.rules import general
from keras_l2o.rules import general_features as gf

KERNEL = "general_direction"
# Hidden layers and widths the kernel's stack arrays hold.
MAX_LAYERS = 4
MAX_WIDTH = 32


def supports(rule, var_dtype) -> bool:
  """Whether the native kernel computes `rule`'s matrix steps for a variable of `var_dtype`.

  True for a `GeneralRule` with 1 to `MAX_LAYERS` hidden layers of at most
  `MAX_WIDTH` units computing in float32 (float32 variables, and half-precision
  ones, whose rule state is float32), once the kernel is built and loaded.
  Vectors then take the rule's own Adam-like path (`apply`).
  """
  return (isinstance(rule, general.GeneralRule) and 1 <= len(rule.hidden_sizes) <= MAX_LAYERS
          and max(rule.hidden_sizes) <= MAX_WIDTH
          and rule.state_dtype(tf.as_dtype(var_dtype)) == tf.float32
          and library.available(KERNEL))


def _time_terms(rule, meta_params, step):
  """The time features' products with the first layer and the skip (empty without them)."""
  if not rule.num_training_steps:
    return tf.zeros([0]), tf.zeros([0])
  times = gf.time_features(step, rule.num_training_steps, tf.float32)[:, None]
  first, skip = meta_params["hidden_0"]["kernel"], meta_params["skip"]
  return (tf.matmul(first[gf.NUM_CHANNELS:], times, transpose_a=True)[:, 0],
          tf.matmul(skip[gf.NUM_CHANNELS:], times, transpose_a=True)[:, 0])


def direction(rule, meta_params, grad, var, state, step):
  """`rule.direction(...)` of a float32 matrix (rank >= 2, static shape) by the kernel.

  Returns:
    `(d, new_state)` as `GeneralRule.direction` returns them.
  """
  meta_params = base.cast_meta_params(meta_params, tf.float32)
  shape = grad.shape.as_list()
  r, c = shape[-2:]
  slices = int(np.prod(shape[:-2], dtype=np.int64))
  k = len(gf.MOMENTUM_DECAYS)
  layers = [meta_params[f"hidden_{i}"] for i in range(len(rule.hidden_sizes))]
  time_hidden, time_skip = _time_terms(rule, meta_params, step)
  d, m, v, rows, cols = library.load(KERNEL).keras_l2o_general_direction(
      grad=tf.reshape(grad, [slices, r, c]), var=tf.reshape(var, [slices, r, c]),
      momentum=tf.reshape(state.momentum, [k, slices, r, c]),
      velocity=tf.reshape(state.velocity, [slices, r, c]),
      rows=tf.reshape(state.rows, [k, slices, r]), cols=tf.reshape(state.cols, [k, slices, c]),
      kernels=[p["kernel"] for p in layers], biases=[p["bias"] for p in layers],
      skip=tf.reshape(meta_params["skip"], [-1]),
      out_kernel=tf.reshape(meta_params["output"]["kernel"], [-1]),
      out_bias=tf.reshape(meta_params["output"]["bias"], [-1]),
      time_hidden=time_hidden, time_skip=time_skip)
  new_state = gf.GeneralState(tf.reshape(m, [k] + shape), tf.reshape(v, shape),
                              tf.reshape(rows, [k] + shape[:-1]),
                              tf.reshape(cols, [k] + shape[:-2] + shape[-1:]))
  return tf.reshape(d, shape), new_state


def apply(rule, meta_params, grad, var, state, step):
  """`rule.apply(...)` with a matrix's direction from the kernel (vectors: `rule.apply`)."""
  if not gf.is_matrix(grad.shape) or grad.dtype != tf.float32:
    return rule.apply(meta_params, grad, var, state, step)
  d, new_state = direction(rule, meta_params, grad, var, state, step)
  return rule.finish(d), new_state


def native_delta(rule, meta_params, grad, var, state, step, learning_rate):
  """`keras_l2o.step.rule_delta(rule, ...)` with the kernel's direction; see `supports`.

  Raises:
    ValueError: if `supports(rule, var.dtype)` is False.
  """
  if not supports(rule, var.dtype):
    raise ValueError(f"The native general kernel does not compute this step (rule "
                     f"{rule.name!r} with config {rule.get_config()}, variable dtype "
                     f"{tf.as_dtype(var.dtype).name}, kernel built: "
                     f"{library.available(KERNEL)}). Check "
                     "`keras_l2o.native.general_rule.supports` first.")
  compute_dtype = rule.state_dtype(var.dtype)
  return step_lib.delta_of(functools.partial(apply, rule), rule, meta_params,
                           tf.cast(grad, compute_dtype), tf.cast(var, compute_dtype), state,
                           step, learning_rate, var.dtype)
