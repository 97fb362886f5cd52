"""The three paths of a `LearnedOptimizer` step, and which one a variable takes.

`step_path(jit_rule, rule, variable)` names the path: `"native"` (a
hand-written CPU kernel of `keras_l2o.native`), `"xla"` (the rule's fused form
compiled by XLA, `FastDelta` below) or `"reference"` (`keras_l2o.step.rule_delta`).

The reference path, `keras_l2o.step.rule_delta`, is the definition of a rule's
step: the meta-trainers differentiate through it and the shipped pretrained
optimizers are reproduced bit for bit by it. It stays untouched. The `"xla"` path
is a second way to compute the same delta when a rule is only *applied*
(in `model.fit`), never differentiated:

* the rule's `fast_apply`: the same function as `apply`, written for XLA (the
  mlp rule unrolls its hidden layer over units instead of two skinny matmuls;
  the lstm rule runs over blocks of coordinates that stay in cache), or
  `apply` itself for rules without one;
* compiled with `tf.function(jit_compile=True)`: a pure function, tensors in
  and tensors out, on the variable laid out as a matrix (`compute_shape`), so
  XLA turns the whole per-coordinate rule into one multithreaded loop.

The fast path differs from the reference by floating-point rounding only
(XLA's own kernels and summation order): for the mlp rule about 4e-7 of the
largest update in one step, and parameters within 1e-6 relative after 100
`model.fit` steps; for the lstm rule 1e-5 in one step
(tests/optimizer/test_fast_path.py). It is never used for meta-training: there XLA both
changes the numbers of the shipped optimizers and made the meta-gradient
through sqrt(v) at v = 0 NaN.

`LearnedOptimizer(jit_rule=...)` chooses per variable with `step_path`
among three paths: `"native"`, a hand-written CPU kernel
(`keras_l2o.native`; today the lstm rule's and the general rule's
per-coordinate part, when built), `"xla"`, this
module's compiled fused form, and `"reference"`:

* `"auto"` (default): the native kernel where there is one; else the fused
  form for rules that ask for it (`auto_fast_path`: mlp), on variables of at
  least `AUTO_MIN_SIZE` entries;
* `True`: the native kernel where there is one, else the fused form, for
  every rule and variable;
* `False`: the reference path everywhere.

The native kernel is skipped inside an XLA cluster (`model.fit(jit_compile=
True)`: XLA cannot compile it; the fused form or the reference runs there)
and for variables placed on a GPU or TPU (it has a CPU kernel only).

Rules that read the objective value (`rule.uses_loss`) always take the
reference path. The compiled function takes and returns tensors only (no
resource variables), so it also runs inside `model.fit(jit_compile=True)`
(inlined into the step's XLA cluster) and in the replica context of a
`MirroredStrategy` over logical CPUs, where whole-step XLA fails
(ENVIRONMENT.md); tests/optimizer/test_fast_path.py runs both.

Example:

>>> import numpy as np, tensorflow as tf, keras_l2o
>>> from keras_l2o import step, step_paths
>>> rule = keras_l2o.rules.get("mlp")
>>> meta = rule.init_meta_params(0)
>>> grad, var = tf.constant(np.linspace(-1.0, 1.0, 5), tf.float32), tf.zeros([5])
>>> fast, _ = step_paths.get(rule)(meta, grad, var, rule.init_state(var), 1, 1.0)
>>> ref, _ = step.rule_delta(rule, meta, grad, var, rule.init_state(var), 1, 1.0)
>>> bool(np.allclose(fast, ref, rtol=1e-6, atol=1e-12))
True
"""

import functools

import tensorflow as tf

from keras_l2o import step as step_lib
from keras_l2o.native import general_rule as native_general
from keras_l2o.native import lstm_rule as native_lstm

JIT_RULE_MODES = ("auto", True, False)
# Below about this many entries the XLA launch (~20-30 microseconds) costs as
# much as the reference rule itself (measured on 2 CPU cores, docs/PERFORMANCE.md).
AUTO_MIN_SIZE = 4096
# At most this many rows in the matrix layout of `compute_shape`.
MAX_ROWS = 1024


def check_mode(jit_rule):
  """Returns `jit_rule` if it is one of `JIT_RULE_MODES`, else raises ValueError."""
  if not any(jit_rule is mode or (isinstance(jit_rule, str) and jit_rule == mode)
             for mode in JIT_RULE_MODES):
    raise ValueError(f"Argument `jit_rule` must be one of {list(JIT_RULE_MODES)}. "
                     f"Received: jit_rule={jit_rule!r}")
  return jit_rule


def has_fused_form(rule) -> bool:
  """Whether `rule` defines `fast_apply` (a fused form of `apply`)."""
  return callable(getattr(rule, "fast_apply", None))


def use_fast_path(jit_rule, rule, variable) -> bool:
  """Whether the fast path computes the step of `variable` (see the module doc).

  Under `"auto"` only rules with `auto_fast_path = True` (the mlp rule, whose
  fused form is 6x faster) qualify; the lstm rule's blocked form was 1.0-2.2x
  faster depending on the machine's load, not worth its rounding changes by
  default (`jit_rule=True` uses it where the native kernel does not run, see
  `step_path`).
  """
  if jit_rule is False or getattr(rule, "uses_loss", False):
    return False
  if jit_rule == "auto":
    size = tf.TensorShape(variable.shape).num_elements() or 0
    return (getattr(rule, "auto_fast_path", False) and has_fused_form(rule)
            and size >= AUTO_MIN_SIZE)
  return True


def in_xla_context() -> bool:
  """Whether ops created now are compiled by XLA (inside `tf.function(jit_compile=True)`)."""
  # pylint: disable-next=g-direct-tensorflow-import
  from tensorflow.python.ops import control_flow_util
  return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def _on_cpu(variable) -> bool:
  device = (getattr(variable, "device", None) or "").upper()
  return "GPU" not in device and "TPU" not in device


# Modules with a native kernel: each has `supports(rule, var_dtype)` and `native_delta`.
NATIVE_MODULES = (native_lstm, native_general)


def native_module(rule, var_dtype):
  """The module of `NATIVE_MODULES` whose kernel computes `rule`'s step in `var_dtype`, or None."""
  return next((m for m in NATIVE_MODULES if m.supports(rule, var_dtype)), None)


def step_path(jit_rule, rule, variable) -> str:
  """Which path computes the step of `variable`: `"native"`, `"xla"` or `"reference"`.

  See the module doc for the rules.
  """
  if jit_rule is False or getattr(rule, "uses_loss", False):
    return "reference"
  if (native_module(rule, variable.dtype) is not None and _on_cpu(variable)
      and not in_xla_context()):
    return "native"
  return "xla" if use_fast_path(jit_rule, rule, variable) else "reference"


def compute_shape(size):
  """The shape `[rows, size // rows]` in which the fast path sees a variable of `size` entries.

  XLA on CPU splits a loop across threads along its outer dimension; over a
  vector of odd length it ran 2.5-4x slower than over a matrix (931,225
  entries: 25 ns per entry as a vector, 7.8 as 965 x 965). So the entries are
  laid out as a matrix with the largest divisor of `size` up to `MAX_ROWS` as
  the number of rows (a vector when `size` is prime or unknown).
  """
  if not size:
    return [-1]
  rows = max(d for d in range(1, min(MAX_ROWS, size) + 1) if size % d == 0)
  return [rows, size // rows] if rows > 1 else [size]


class FastDelta:
  """`rule_delta` through the rule's fused form, compiled by XLA.

  Call it like `keras_l2o.step.rule_delta(rule, ...)` without the rule:
  `(meta_params, grad, var, state, step, learning_rate) -> (delta, new_state)`;
  with `add_to_var=True` it returns `(var + delta, new_state)` instead, which
  spares the optimizer a pass over memory. Variables are reshaped to
  `compute_shape(size)` (state fields to that plus their extra dimension), so
  one XLA executable serves every variable of the same size.

  Args:
    rule: a `keras_l2o.rules.Rule` (hashable: get one with `get(rule)`).
  """

  def __init__(self, rule):
    self.rule = rule
    self._compiled = tf.function(self._step, jit_compile=True, autograph=False)

  def _step(self, meta_params, grad, var, state, step, learning_rate, add_to_var):
    rule = self.rule
    compute_dtype = rule.state_dtype(var.dtype)
    apply = rule.fast_apply if has_fused_form(rule) else rule.apply
    delta, new_state = step_lib.delta_of(apply, rule, meta_params, tf.cast(grad, compute_dtype),
                                         tf.cast(var, compute_dtype), state, step, learning_rate,
                                         var.dtype)
    return (var + delta if add_to_var else delta), tuple(new_state)

  def __call__(self, meta_params, grad, var, state, step, learning_rate, add_to_var=False):
    learning_rate = tf.cast(learning_rate, self.rule.state_dtype(var.dtype))
    # Tensors only: a variable argument would be captured by the shared trace.
    meta_params = tf.nest.map_structure(tf.convert_to_tensor, meta_params)
    step = tf.cast(step, tf.int64)
    if not self.rule.layout_free(var.shape):  # the step depends on the shape (mlp_factored)
      out, new_state = self._compiled(meta_params, grad, var, state, step, learning_rate,
                                      bool(add_to_var))
      return out, type(state)(*new_state)
    shape = tf.shape(var)
    layout = compute_shape(var.shape.num_elements())
    dims = self.rule.trailing_state_dims()
    laid_out_state = type(state)(*[tf.reshape(s, layout + [e] if e else layout)
                                   for s, e in zip(state, dims)])
    out, new_state = self._compiled(meta_params, tf.reshape(grad, layout),
                                    tf.reshape(var, layout), laid_out_state, step,
                                    learning_rate, bool(add_to_var))
    new_state = [tf.reshape(s, tf.concat([shape, [e]], 0) if e else shape)
                 for s, e in zip(new_state, dims)]
    return tf.reshape(out, shape), type(state)(*new_state)


@functools.lru_cache(maxsize=None)
def get(rule) -> FastDelta:
  """The (shared) `FastDelta` of `rule`; rules are equal when their configs are."""
  return FastDelta(rule)
