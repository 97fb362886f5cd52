"""The rule protocol: a pure update formula plus its meta-parameters.

A *rule* is the mathematical heart of an optimizer. It is written once, as pure
TensorFlow functions, and called from two places: the Keras optimizer
(`keras_l2o.LearnedOptimizer.update_step`) and the differentiable unroll of the
meta-trainers. Both paths therefore compute the same numbers.

The protocol:

* `init_meta_params(seed)` returns the meta-parameters: a nested dict of float32
  tensors (empty for hand-designed rules).
* `init_state(var)` returns the per-variable state as a NamedTuple of tensors.
* `apply(meta_params, grad, var, state, step)` returns `(update, new_state)`.
  The optimizer then sets `var <- var + learning_rate * update`, so `update`
  already carries its sign (SGD's update is `-grad`).

`step` is the 1-based index of the update being computed (as Keras's Adam uses
`iterations + 1`).

Rules that set `folds_learning_rate = True` (the hand-designed momentum rules,
as Keras's) take `apply(..., learning_rate=...)` and return the change of the
variable with the rate already applied; `keras_l2o.step.rule_delta` does not
multiply it again.

Rules that also need the objective value (Li & Malik's policy) set the class
attribute `uses_loss = True` and take `apply(..., loss=...)`: a scalar float
tensor, the objective at the current iterate. `keras_l2o.step.rule_delta`
passes it only to such rules; the unroll passes the loss it computed, and
`LearnedOptimizer.set_loss` supplies it in a custom training loop.

Each rule declares everything once:

* its configuration is its constructor's keyword arguments, kept as attributes
  of the same names; `get_config()` reads them back (as Keras's optimizers do);
* its per-variable state is one NamedTuple class made by `declare_state`, which
  also records each field's extra trailing dimension (`state_fields`,
  `trailing_state_dims()` and `zeros_state` derive from it);
* its meta-parameters' shapes are `meta_param_shapes()`, computed from the
  configuration; `init_meta_params(seed)` draws the initial values.
"""

import abc
import collections
import copy
import functools
import inspect
import sys
from typing import Any, Optional

import tensorflow as tf


@functools.lru_cache(maxsize=None)
def _state_class(name, fields, extra_dims, module):
  cls = collections.namedtuple(name, fields, module=module)
  cls.extra_dims = extra_dims
  return cls


def declare_state(name: str, **extra_dims: Optional[int]) -> type:
  """The NamedTuple class of a rule's per-variable state: its one declaration.

  Args:
    name: the class name, e.g. `"AdamState"`.
    **extra_dims: one keyword per field, in order: the field's extra trailing
      dimension, or None for a field shaped like the variable (for a vector
      variable, which is what an exported optimizer steps).

  Returns:
    A NamedTuple class with the class attribute `extra_dims` (the values, in
    field order). The same arguments give the same class.

  Example:

  >>> s = declare_state("ExampleState", momentum=None, memory=4)
  >>> s._fields, s.extra_dims
  (('momentum', 'memory'), (None, 4))
  >>> declare_state("ExampleState", momentum=None, memory=4) is s
  True
  """
  module = sys._getframe(1).f_globals.get("__name__", __name__)  # pylint: disable=protected-access
  return _state_class(name, tuple(extra_dims), tuple(extra_dims.values()), module)


EmptyState = declare_state("EmptyState")  # the state of a rule that keeps none (plain SGD)


class Rule(abc.ABC):
  """Base class of every update rule.

  Subclasses set `name` and `state_type`, take their configuration as
  keyword-only arguments of `__init__` and keep each as the attribute of the
  same name (validated, in its JSON form), and implement `init_state` and
  `apply`. Rules with meta-parameters also implement `meta_param_shapes` and
  `init_meta_params`.

  Rules hold configuration only (Python numbers and strings); never tensors or
  variables. Meta-parameters are passed to `apply` explicitly, which is what
  makes the rule differentiable with respect to them.
  """

  name: str = ""
  # The NamedTuple class of the per-variable state (`declare_state(...)`). Rules
  # whose state depends on their configuration define it as a property.
  state_type: type = EmptyState
  # Configuration keys left out of `get_config()` while their value is None:
  # options added after runs were saved without them, whose configuration (and
  # so their rule's equality) stays what it was.
  omitted_when_none: tuple = ()
  # Whether `apply` takes `loss=` (the objective at the current iterate).
  uses_loss: bool = False
  # Whether the rule applies the learning rate itself: `apply(..., learning_rate=)`
  # then returns the change of the variable (the rate already applied) and
  # `keras_l2o.step.rule_delta` does not multiply it. Keras's momentum
  # optimizers fold the current rate into their velocity
  # (`m <- mu m - lr_t g; var <- var + m`); the hand-designed momentum rules do
  # the same, so that they equal Keras under schedules too.
  folds_learning_rate: bool = False
  # Whether a coordinate whose gradient is exactly 0 keeps its value and its
  # state exactly (update 0, state unchanged), coordinate by coordinate. For
  # such rules `LearnedOptimizer` applies a sparse gradient (an embedding's
  # `IndexedSlices`) to the touched rows only, with the same numbers as the
  # dense step; other rules (momentum decays every row) get it densified.
  row_sparse: bool = False

  def __init__(self, **config):
    if config:  # the protocol before issue 17 passed the settings up; say what changed
      raise TypeError(f"Rule.__init__ takes no configuration: {type(self).__name__} should keep "
                      "each keyword-only argument as the attribute of the same name instead. "
                      f"Received: {sorted(config)}")

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if (cls.init_meta_params is not Rule.init_meta_params
        and cls.meta_param_shapes is Rule.meta_param_shapes):
      raise TypeError(f"Rule class {cls.__name__} defines init_meta_params but not "
                      "meta_param_shapes: declare the shapes from the configuration.")
    cls._config_keys = tuple(cls.config_names())  # read by every get_config, __eq__, __hash__

  # ---------------------------------------------------------------- config --
  @classmethod
  def config_names(cls) -> list:
    """The configuration keys this rule accepts: the keyword-only arguments of `__init__`."""
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p != "self" and params[p].kind is inspect.Parameter.KEYWORD_ONLY]

  def get_config(self) -> dict:
    """Returns the JSON-serialisable configuration that rebuilds this rule.

    It is the attributes named by `config_names()`, copied (keys of
    `omitted_when_none` left out while None).
    """
    return copy.deepcopy(self._config())

  def _config(self) -> dict:
    """`get_config()` without the copy (its values are the attributes themselves)."""
    config = {}
    for key in self._config_keys:
      value = getattr(self, key)
      if value is not None or key not in self.omitted_when_none:
        config[key] = value
    return config

  @classmethod
  def from_config(cls, config: dict) -> "Rule":
    """The rule of `config` (the inverse of `get_config`)."""
    return cls(**config)

  def __repr__(self):
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(self._config().items()))
    return f"{type(self).__name__}({args})"

  def __eq__(self, other):
    return type(self) is type(other) and self._config() == other._config()

  def __hash__(self):
    return hash((type(self).__name__, repr(sorted(self._config().items()))))

  # ------------------------------------------------------- meta-parameters --
  @property
  def is_learned(self) -> bool:
    """Whether this rule has meta-parameters."""
    return bool(self.meta_param_shapes())

  def meta_param_shapes(self) -> dict:
    """The nested dict of shapes (tuples) that `apply` expects for meta-parameters.

    Declared from the configuration (no initialisation runs); the keys are in
    the order of `init_meta_params`. `{}` for hand-designed rules.
    """
    return {}

  def init_meta_params(self, seed: int) -> dict:
    """Returns freshly initialised meta-parameters as a nested dict of tensors.

    Args:
      seed: integer seed; the same seed gives the same meta-parameters.

    Returns:
      A nested dict of float32 tensors shaped as `meta_param_shapes()`; `{}`
      for hand-designed rules.
    """
    del seed
    return {}

  # ------------------------------------------------------------------ state --
  def state_dtype(self, var_dtype) -> tf.DType:
    """The dtype in which state is kept and the rule computes for a variable.

    Half-precision variables (float16, bfloat16) get float32 state and
    arithmetic, so learned rules neither overflow nor underflow; other float
    dtypes compute in their own precision.
    """
    var_dtype = tf.as_dtype(var_dtype)
    if var_dtype in (tf.float16, tf.bfloat16):
      return tf.float32
    return var_dtype

  @property
  def state_fields(self) -> tuple:
    """The names of the state's fields, in order (`state_type._fields`)."""
    return self.state_type._fields

  def trailing_state_dims(self) -> tuple:
    """Per state field: its extra trailing dimension, or None if shaped like the variable
    (`state_type.extra_dims`)."""
    return self.state_type.extra_dims

  def layout_free(self, shape) -> bool:  # pylint: disable=unused-argument
    """Whether the rule treats a variable of `shape` coordinate by coordinate.

    Such variables may be re-laid out (flattened, reshaped) before `apply`:
    the fast path does so. Rules whose step depends on the variable's shape
    (a factored second moment) return False for those shapes.
    """
    return True

  def meta_params_from(self, rule, meta_params) -> dict:
    """`rule`'s trained meta-parameters as this rule's (e.g. to fine-tune them).

    Args:
      rule: the rule `meta_params` belong to.
      meta_params: its meta-parameters.

    Returns:
      `meta_params`, when `rule == self`. Rules that extend another
      configuration (`mlp` with `weight_scale`) override this.

    Raises:
      ValueError: `rule` is not this rule (both are named).
    """
    if rule != self:
      raise ValueError(f"Meta-parameters of rule {rule.name!r} with configuration "
                       f"{rule.get_config()} do not fit rule {self.name!r} with configuration "
                       f"{self.get_config()}.")
    return meta_params

  def state_floats_per_parameter(self) -> int:
    """Floats of optimizer state kept for every parameter."""
    return int(sum(e or 1 for e in self.trailing_state_dims()))

  @abc.abstractmethod
  def init_state(self, var) -> Any:
    """Returns the initial state for a variable (a NamedTuple of tensors).

    Args:
      var: the variable (or a tensor of its shape and dtype).
    """

  @abc.abstractmethod
  def apply(self, meta_params, grad, var, state, step):
    """Computes one update.

    Args:
      meta_params: nested dict of tensors as returned by `init_meta_params`.
      grad: gradient tensor, same shape as `var`.
      var: current value of the parameter.
      state: the rule's state for this parameter (NamedTuple).
      step: 1-based index of this update (scalar tensor or number).
      (`loss`: only rules with `uses_loss = True` take this keyword argument,
      the objective at `var`, a scalar tensor.)

    Returns:
      `(update, new_state)`: the variable becomes `var + learning_rate * update`.
    """


def zeros_state(rule: Rule, var):
  """Builds a `rule.state_type` of zeros for `var`, in the rule's state dtype and shapes.

  Works for static and dynamic shapes (a SavedModel signature over a vector of
  unknown length).
  """
  dtype = rule.state_dtype(var.dtype)
  shape = tf.shape(var)
  return rule.state_type(*[
      tf.zeros(tf.concat([shape, [e]], 0) if e else shape, dtype)
      for e in rule.trailing_state_dims()
  ])


def cast_meta_params(meta_params, dtype):
  """Casts every meta-parameter to `dtype` (no-op when it already matches)."""
  return tf.nest.map_structure(lambda t: tf.cast(t, dtype), meta_params)
