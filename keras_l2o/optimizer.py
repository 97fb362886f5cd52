"""`LearnedOptimizer`: any rule as a Keras 3 optimizer."""

import keras
import numpy as np
import tensorflow as tf

from keras_l2o import meta_params as meta_params_lib
from keras_l2o import nonfinite as nonfinite_lib
from keras_l2o import rules as rules_lib
from keras_l2o import step as step_lib
from keras_l2o import step_paths as step_paths_lib
from keras_l2o import validation
from keras_l2o.native import lstm_rule as native_lstm


def _dense(gradient, variable):
  """The gradient as a dense tensor of the variable's (static) shape."""
  if isinstance(gradient, tf.IndexedSlices):
    # The dense shape of an embedding's IndexedSlices is often unknown in a trace;
    # rules whose step depends on the shape (mlp_factored) need it static.
    return tf.ensure_shape(tf.convert_to_tensor(gradient), variable.shape)
  return gradient


def _resource(variable):
  """The tf.Variable behind a Keras variable (itself otherwise)."""
  return variable.value if isinstance(variable, keras.Variable) else variable


def _unique_rows(gradient):
  """`(values, indices)` of IndexedSlices with duplicate indices summed (as densifying does)."""
  indices, positions = tf.unique(gradient.indices)
  values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(indices)[0])
  return values, indices


def _unique_name(prefix):
  """`prefix`, then `prefix_1`, `prefix_2`, ...: Keras's own naming of optimizers and layers."""
  # pylint: disable-next=g-import-not-at-top
  from keras.src.utils import naming  # Keras's `auto_name` counter (no public alias).
  return naming.uniquify(prefix)


@keras.saving.register_keras_serializable(package="keras_l2o")
class LearnedOptimizer(keras.optimizers.Optimizer):
  """A Keras optimizer whose update is given by a (learned) rule.

  Every step sets `var <- var + learning_rate * update`, where `update` comes
  from `rule.apply(meta_params, grad, var, state, step)`: the same function the
  meta-trainers differentiate through. Everything Keras does with an optimizer
  keeps working: `fit`, schedules, clipping, weight decay, EMA, gradient
  accumulation, loss scaling and mixed precision, saving and loading.

  The meta-parameters are non-trainable optimizer variables (created in the
  constructor, before any slot), so `model.save` / `keras.models.load_model`
  and `tf.train.Checkpoint` carry them together with the rule's state and
  `iterations`.

  Rules that read the objective value (`rule.uses_loss`, e.g. `gps_policy`)
  get it from `set_loss(loss)`: `model.fit` supplies it (through
  `scale_loss`), a custom training loop calls it before every
  `apply_gradients`.

  Args:
    rule: a rule name (`"lstm"`, `"mlp"`, `"adam"`, ...; see
      `keras_l2o.rules.names()`), a `keras_l2o.rules.Rule`, or a serialized
      rule dict `{"name": ..., "config": {...}}`.
    meta_params: nested dict of arrays for the rule. Defaults to
      `rule.init_meta_params(seed)`.
    learning_rate: a finite float >= 0, a
      `keras.optimizers.schedules.LearningRateSchedule`, or a callable: of the
      iteration (`lambda iteration: ...`, called with `optimizer.iterations`,
      like a schedule) or of no argument (Keras's convention); multiplies the
      rule's output. Defaults to 1.0, which uses a learned rule as it was
      meta-trained.
    nonfinite: what to do when a gradient contains NaN or Inf: `"skip"`
      (default: the whole step is skipped, variables, rule state and
      `iterations` stay untouched), `"zero"` (non-finite entries are replaced
      by 0) or `"raise"` (an `InvalidArgumentError`; needs `jit_compile=False`);
      see `keras_l2o.nonfinite`.
    seed: seed of the initial meta-parameters when `meta_params` is None.
    jit_rule: how each variable's step is computed: `"auto"` (default) uses
      the rule's native CPU kernel where there is one (the lstm rule's, the
      general rule's per-coordinate part: `keras_l2o.native`), else the fast path of
      `keras_l2o.step_paths` (the
      rule's fused form compiled by XLA) for rules that ask for it (mlp) on
      variables of at least `step_paths.AUTO_MIN_SIZE` entries; both differ
      from the reference by rounding only. `True` uses the native kernel or
      the fused form for every rule and variable; `False` always uses the
      reference `keras_l2o.step.rule_delta`, bit-identical to the
      meta-trainers' unroll.
    name: the optimizer's name. Defaults to a unique name made as Keras makes
      its own (`learned_optimizer_adam`, `learned_optimizer_adam_1`, ...), so
      that several optimizers live in one model's state tree.
    **kwargs: every keyword argument Keras optimizers accept: `weight_decay`,
      `clipnorm`, `clipvalue`, `global_clipnorm`, `use_ema`, `ema_momentum`,
      `ema_overwrite_frequency`, `loss_scale_factor`,
      `gradient_accumulation_steps`.

  Raises:
    ValueError: for an unknown rule, meta-parameters of the wrong structure or
      shape or with NaN, Inf or absurdly large entries
      (`validation.MAX_META_PARAM_MAGNITUDE`), a NaN, infinite or negative
      `learning_rate`, or an unknown `nonfinite` or `jit_rule` mode.

  Example:

  >>> import keras, numpy as np, keras_l2o
  >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
  >>> model.compile(optimizer=keras_l2o.LearnedOptimizer("mlp"), loss="mse")
  >>> history = model.fit(np.ones((8, 4)), np.ones((8, 1)), epochs=2, verbose=0)
  >>> len(history.history["loss"])
  2
  """

  def __init__(self, rule, meta_params=None, learning_rate=1.0, nonfinite="skip", seed=0,
               name=None, jit_rule="auto", **kwargs):
    if isinstance(rule, dict):
      rule = rules_lib.deserialize(rule)
    rule = rules_lib.get(rule)
    validation.check_choice("nonfinite", nonfinite, nonfinite_lib.MODES)
    seed = validation.check_int("seed", seed)
    if meta_params is None:
      meta_params = rule.init_meta_params(seed)
    meta_values = meta_params_lib.validate(rule, meta_params)
    learning_rate = validation.check_learning_rate(learning_rate)
    if name is None:
      name = _unique_name(f"learned_optimizer_{rule.name}")
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.rule = rule
    self.nonfinite = nonfinite
    self.seed = seed
    self.jit_rule = step_paths_lib.check_mode(jit_rule)
    paths = meta_params_lib.flatten_with_paths(meta_values)
    self._meta_paths = [path for path, _ in paths]
    self._meta_variables = [
        self.add_variable(shape=value.shape, initializer=keras.initializers.Constant(value),
                          dtype="float32", name="meta_" + path.replace("/", "_"))
        for path, value in paths
    ]
    # Rules that use the objective value read it from this variable (`set_loss`).
    self._loss_variable = None
    self._loss_was_set = False
    if rule.uses_loss:
      # "mean": under a strategy each replica records its loss in `scale_loss`.
      self._loss_variable = self.add_variable(shape=(), initializer="zeros", dtype="float32",
                                              aggregation="mean", name="objective_value")

  # ---------------------------------------------------------------- loss --
  def set_loss(self, loss):
    """Gives a loss-using rule (`rule.uses_loss`) the objective at the current parameters.

    Call it before every `apply_gradients` with the loss whose gradients are
    applied. `model.fit` needs no call: Keras passes the loss to
    `scale_loss`, which records it.

    Args:
      loss: scalar, the objective at the current values of the variables.

    Raises:
      ValueError: if the rule does not use the objective value.
    """
    if self._loss_variable is None:
      raise ValueError(f"Rule {self.rule.name!r} does not use the objective value; set_loss() "
                       "is only for rules with `uses_loss = True`.")
    self._loss_variable.assign(tf.cast(tf.reshape(loss, []), tf.float32))
    self._loss_was_set = True

  def scale_loss(self, loss):
    """Records the loss for loss-using rules, then scales it as Keras does.

    Keras's `train_step` calls this with the batch loss at the current
    parameters, before it computes the gradients, so `model.fit` feeds rules
    such as `gps_lstm` without a custom loop. Under a strategy each replica's
    share of the loss is recorded and averaged; the rules use only relative
    changes of the loss, which that scaling leaves unchanged.
    """
    if self._loss_variable is not None:
      self.set_loss(loss)
    return super().scale_loss(loss)

  # ------------------------------------------------------- learning rate --
  def _get_current_learning_rate(self):
    """Keras's rule, plus callables of the iteration (`lambda iteration: ...`)."""
    if step_lib.takes_iteration(self._learning_rate):
      return self._learning_rate(self._iterations)
    return super()._get_current_learning_rate()

  # --------------------------------------------------------- meta-params --
  @property
  def meta_params(self) -> dict:
    """The meta-parameters: a nested dict of the optimizer's `keras.Variable`s."""
    return meta_params_lib.unflatten_paths(zip(self._meta_paths, self._meta_variables))

  def set_meta_params(self, meta_params):
    """Assigns new values to the meta-parameters (validated against the rule).

    Args:
      meta_params: nested dict of arrays shaped as `rule.meta_param_shapes()`.

    Raises:
      ValueError: naming the first missing, unexpected, mis-shaped, non-finite
        or absurdly large entry (`keras_l2o.meta_params.validate`); no
        variable is changed then.
    """
    values = dict(meta_params_lib.flatten_with_paths(meta_params_lib.validate(self.rule,
                                                                               meta_params)))
    for path, variable in zip(self._meta_paths, self._meta_variables):
      variable.assign(values[path])

  def _meta_values(self):
    return meta_params_lib.unflatten_paths(
        (path, variable.value) for path, variable in zip(self._meta_paths, self._meta_variables))

  # --------------------------------------------------------------- build --
  def build(self, var_list):
    """Creates the rule's state for every variable (after Keras's own slots)."""
    if self.built:
      return
    for variable in var_list:
      if not tf.as_dtype(variable.dtype).is_floating:
        raise ValueError(
            f"LearnedOptimizer updates floating-point variables only; variable "
            f"{getattr(variable, 'path', variable.name)!r} has dtype "
            f"{tf.as_dtype(variable.dtype).name}.")
    super().build(var_list)
    self._state_variables = []
    self._state_types = []
    for variable in var_list:
      if self._overwrite_variable_with_gradient(variable):
        self._state_variables.append(None)
        self._state_types.append(None)
        continue
      with tf.init_scope():  # Keras may build inside a traced train function.
        initial = self.rule.init_state(tf.zeros(variable.shape, variable.dtype))
        values = [v.numpy() for v in initial]
      self._state_types.append(type(initial))
      self._state_variables.append([
          self._add_state_variable(variable, field, value)
          for field, value in zip(initial._fields, values)
      ])

  def _add_state_variable(self, reference, field, value):
    base_name = getattr(reference, "path", reference.name).replace("/", "_").replace(":", "_")
    colocate = reference.value if isinstance(reference, keras.Variable) else reference
    # A state filled with one number (zeros; Adagrad's initial accumulator) gets a scalar
    # Constant. A Constant holding the whole array, with Keras building the optimizer inside
    # the traced train step, cost +0.7 GB of peak memory at 10M parameters (measured by
    # scripts/benchmark/; where exactly the copies lived was not pinned down).
    flat = value.reshape(-1)
    uniform = flat.size == 0 or bool(np.all(flat == flat[0]))
    initializer = keras.initializers.Constant(
        (float(flat[0]) if flat.size else 0.0) if uniform else value)
    with self._distribution_strategy.extended.colocate_vars_with(colocate):
      return self.add_variable(shape=tuple(value.shape), initializer=initializer,
                               dtype=value.dtype.name, name=f"{base_name}_{field}")

  def state_for(self, variable):
    """The rule's current state for `variable` (a NamedTuple of variables)."""
    index = self._get_variable_index(variable)
    return self._state_types[index](*self._state_variables[index])

  # -------------------------------------------------------------- update --
  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    slots = self._state_variables[index]
    if isinstance(gradient, tf.IndexedSlices) and getattr(self.rule, "row_sparse", False):
      self._update_rows(gradient, variable, slots, self._state_types[index], learning_rate)
      return
    gradient = _dense(gradient, variable)
    path = step_paths_lib.step_path(self.jit_rule, self.rule, variable)
    if path == "native" and native_lstm.supports_in_place(self.rule, variable):
      # State and variable updated in place by one op; reading the state first
      # would make the op copy it (it never overwrites a buffer a reader holds).
      native_lstm.apply_in_place(self.rule, self._meta_values(), gradient, variable,
                                 slots, learning_rate)
      return
    state = self._state_types[index](*[tf.convert_to_tensor(s) for s in slots])
    step = self.iterations + 1
    loss = None if self._loss_variable is None else self._loss_variable.value
    fast = path == "xla"
    if fast:  # var + delta computed in the compiled step (one pass over memory fewer)
      new_value, new_state = step_paths_lib.get(self.rule)(
          self._meta_values(), gradient, tf.convert_to_tensor(variable), state, step,
          learning_rate, add_to_var=True)
    elif path == "native":
      native = step_paths_lib.native_module(self.rule, variable.dtype)
      delta, new_state = native.native_delta(self.rule, self._meta_values(), gradient,
                                             variable, state, step, learning_rate)
    else:
      delta, new_state = step_lib.rule_delta(self.rule, self._meta_values(), gradient,
                                             tf.convert_to_tensor(variable), state, step,
                                             learning_rate, loss=loss)
    for slot, value in zip(slots, new_state):
      self.assign(slot, value)
    if fast:
      self.assign(variable, new_value)
    else:
      self.assign_add(variable, delta)

  def _update_rows(self, gradient, variable, slots, state_type, learning_rate):
    """The step on the rows a sparse gradient touches, for rules with `row_sparse = True`.

    Such a rule leaves a coordinate with a zero gradient and its state exactly
    as they are, so applying `rule_delta` (the one formula) to the gathered
    touched rows and scattering the results back gives the dense step's
    numbers at a cost proportional to the touched rows, as Keras's SGD and
    Adagrad do for embeddings.
    """
    values, indices = _unique_rows(gradient)
    # Gather from the backing tf.Variable (a ResourceGather of the rows): gathering from
    # the Keras variable reads the whole table, and the scatter below then copies it.
    rows = tf.gather(_resource(variable), indices)
    state = state_type(*[tf.gather(_resource(s), indices) for s in slots])
    loss = None if self._loss_variable is None else self._loss_variable.value
    delta, new_state = step_lib.rule_delta(self.rule, self._meta_values(), values, rows, state,
                                           self.iterations + 1, learning_rate, loss=loss)
    for slot, value in zip(slots, new_state):
      self.assign(slot, tf.IndexedSlices(value, indices))
    self.assign_add(variable, tf.IndexedSlices(delta, indices))

  def apply(self, grads, trainable_variables=None):
    if self._loss_variable is not None and not self._loss_was_set:
      raise ValueError(f"Rule {self.rule.name!r} uses the objective value: call "
                       "optimizer.set_loss(loss) before every apply_gradients in a custom "
                       "training loop (model.fit does it through scale_loss).")
    grads = list(grads)
    if self.nonfinite == "zero":
      return super().apply(nonfinite_lib.zero_nonfinite(grads), trainable_variables)
    if self.nonfinite == "raise":
      checked = nonfinite_lib.check_numerics(grads, self.name)
      # In a graph nothing would order the update (and `iterations`) after the checks.
      with tf.control_dependencies([nonfinite_lib.values(g) for g in checked if g is not None]):
        return super().apply(checked, trainable_variables)
    return self._apply_skipping_nonfinite(grads, trainable_variables)

  def _apply_skipping_nonfinite(self, grads, trainable_variables):
    """Applies the step only if every gradient is finite (on every replica)."""
    if not self.built:
      if trainable_variables is None:
        raise ValueError("When passing `grads` without `variables`, the optimizer must already "
                         "be built on a list of variables.")
      with tf.name_scope(self.name):
        self.build(list(trainable_variables))
      self.built = True
    parent = super(LearnedOptimizer, self)
    nonfinite_lib.apply_if_finite(lambda g: parent.apply(g, trainable_variables), grads)

  # -------------------------------------------------------------- config --
  def get_config(self):
    config = super().get_config()
    config.update({
        "rule": rules_lib.serialize(self.rule),
        "meta_params": meta_params_lib.to_lists(self._meta_values()),
        "nonfinite": self.nonfinite,
        "seed": self.seed,
        "jit_rule": self.jit_rule,
    })
    return config

  def export(self, path, overwrite=False):
    """Writes this optimizer as a SavedModel usable without keras_l2o.

    See `keras_l2o.export.export_optimizer`: `path` must not be a non-empty
    directory unless `overwrite=True`, which replaces its content.
    """
    from keras_l2o import export as export_lib  # pylint: disable=g-import-not-at-top
    return export_lib.export_optimizer(self, path, overwrite=overwrite)
