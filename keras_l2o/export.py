"""SavedModel export of a learned optimizer, and loading one back.

An export is a `tf.Module` SavedModel that any TensorFlow process can use
without keras_l2o installed:

    opt = tf.saved_model.load(path)
    state = opt.init_state(tf.constant(n))                 # dict of tensors
    out = opt.step(grad=g, var=x, state=state,
                   iteration=tf.constant(0, tf.int64))    # g, x: float32 [n]
    x, state = out["var"], out["state"]

A rule that uses the objective value (`rule.uses_loss`, e.g. `gps_policy`)
takes it as a fifth argument, `step(grad, var, state, iteration, loss)`, with
`loss` the float32 objective at `var`.

`iteration` counts the steps already taken (Keras's `optimizer.iterations`):
the rule sees step `iteration + 1` and the learning rate is evaluated at
`iteration`. The export also carries `learning_rate(iteration)` and a JSON
string variable `keras_l2o_metadata` from which `keras_l2o.load(path)` rebuilds
an identical `LearnedOptimizer`, including its Keras options (clipping, weight
decay, ...), which the bare `step` function does not apply.
"""

import json
import os
import shutil
import tempfile

from absl import logging
import keras
import tensorflow as tf

from keras_l2o import meta_params as meta_params_lib
from keras_l2o import validation

FORMAT = "keras_l2o.export"
FORMAT_VERSION = 1


class _ExportedOptimizer(tf.Module):
  """The module that is saved; holds meta-parameters as variables."""

  def __init__(self, optimizer):
    super().__init__(name="keras_l2o_optimizer")
    self._rule = optimizer.rule
    lr = optimizer._learning_rate  # pylint: disable=protected-access
    if isinstance(lr, keras.Variable) or tf.is_tensor(lr) or isinstance(lr, (int, float)):
      self.learning_rate_variable = tf.Variable(float(lr.numpy() if hasattr(lr, "numpy") else lr),
                                                trainable=False, name="learning_rate")
      self._schedule = None
    else:
      self._schedule = lr  # a LearningRateSchedule or callable, traced into `step`
    paths = meta_params_lib.flatten_with_paths(optimizer._meta_values())  # pylint: disable=protected-access
    self._paths = [p for p, _ in paths]
    self.meta_param_variables = [tf.Variable(tf.convert_to_tensor(v), name=p.replace("/", "_"),
                                             trainable=False) for p, v in paths]
    config = optimizer.get_config()
    config.pop("meta_params")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "rule": config["rule"],
        "optimizer_config": config,
        "meta_param_paths": self._paths,
        "state_fields": list(self._rule.state_fields),
        "uses_loss": bool(self._rule.uses_loss),
    }
    self.keras_l2o_metadata = tf.Variable(json.dumps(metadata), trainable=False)
    self._state_spec = {
        field: tf.TensorSpec([None, e] if e else [None], tf.float32, name=field)
        for field, e in zip(self._rule.state_fields, self._rule.trailing_state_dims())
    }
    # The state fields with one row per entry of the variable (mlp_factored's
    # `velocity_cols` of a vector is a fixed [1]).
    two = self._rule.init_state(tf.zeros([2], tf.float32))
    self._per_entry_fields = [f for f, t in zip(two._fields, two) if t.shape[0] == 2]
    vector = tf.TensorSpec([None], tf.float32)
    iteration = tf.TensorSpec([], tf.int64)
    self.init_state = tf.function(self._init_state,
                                  input_signature=[tf.TensorSpec([], tf.int32)])
    step_signature = [vector, vector, self._state_spec, iteration]
    if self._rule.uses_loss:
      step_signature.append(tf.TensorSpec([], tf.float32, name="loss"))
    self.step = tf.function(self._step, input_signature=step_signature)
    self.learning_rate = tf.function(self._learning_rate, input_signature=[iteration])

  def _meta(self):
    return meta_params_lib.unflatten_paths(zip(self._paths, self.meta_param_variables))

  def _learning_rate(self, iteration):
    if self._schedule is not None:
      from keras_l2o import step as step_lib  # pylint: disable=g-import-not-at-top
      return tf.cast(step_lib.learning_rate_at(self._schedule, iteration), tf.float32)
    return tf.convert_to_tensor(self.learning_rate_variable)

  def _init_state(self, n):
    state = self._rule.init_state(tf.zeros([n], tf.float32))
    return dict(state._asdict())

  def _step(self, grad, var, state, iteration, loss=None):
    from keras_l2o import step as step_lib  # pylint: disable=g-import-not-at-top
    state_type = self._rule.state_type
    # Without these checks a length-1 gradient (or state) would broadcast over the variable.
    checks = [tf.debugging.assert_equal(tf.shape(grad), tf.shape(var), message=(
        "step(): `grad` and `var` must have the same length"))]
    checks += [tf.debugging.assert_equal(tf.shape(state[f])[0], tf.shape(var)[0], message=(
        f"step(): state field {f} must have one row per entry of `var`"))
               for f in self._per_entry_fields]
    with tf.control_dependencies(checks):
      grad, var = tf.identity(grad), tf.identity(var)
    rule_state = state_type(**{f: state[f] for f in state_type._fields})
    new_var, new_state = step_lib.functional_step(self._rule, self._meta(), grad, var, rule_state,
                                                  iteration + 1, self._learning_rate(iteration),
                                                  loss=loss)
    return {"var": new_var, "state": dict(new_state._asdict())}


def export_optimizer(optimizer, path, overwrite=False):
  """Saves `optimizer` (a `LearnedOptimizer`) as a SavedModel at `path`.

  The SavedModel is written to a temporary sibling of `path` first and moved
  into place when complete, so an interrupted export leaves no partial
  directory at `path`.

  Args:
    optimizer: a `keras_l2o.LearnedOptimizer`.
    path: directory to write; created if needed. It must not exist or be
      empty, unless `overwrite`.
    overwrite: replace the content of a non-empty `path` (nothing of the old
      content is kept).

  Returns:
    `path`.

  Raises:
    ValueError: if `path` is a file, or a non-empty directory and `overwrite`
      is False.

  Example:

  >>> import tempfile, tensorflow as tf, keras_l2o
  >>> path = tempfile.mkdtemp()
  >>> _ = keras_l2o.LearnedOptimizer("mlp").export(path)
  >>> exported = tf.saved_model.load(path)
  >>> state = exported.init_state(tf.constant(3))
  >>> out = exported.step(tf.ones([3]), tf.zeros([3]), state, tf.constant(0, tf.int64))
  >>> [round(float(v), 6) for v in out["var"]]
  [-0.001, -0.001, -0.001]
  """
  path = os.fspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError(f"Cannot export to {path!r}: it is a file, not a directory.")
  if os.path.isdir(path) and os.listdir(path) and not overwrite:
    raise ValueError(f"Cannot export to {path!r}: the directory is not empty. Pass "
                     "`overwrite=True` to replace its content.")
  if not optimizer.rule.layout_free(tf.TensorShape([64, 64])):
    logging.warning(
        "Rule %r computes its step from the variable's shape (layout_free is False), but the "
        "export steps flat vectors: a matrix flattened into it gets the rule's vector form "
        "(for mlp_factored, the full second moment instead of the factored one).",
        optimizer.rule.name)
  module = _ExportedOptimizer(optimizer)
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=os.path.basename(path) + ".tmp-", dir=parent)
  try:
    tf.saved_model.save(module, tmp)
    if os.path.isdir(path):
      shutil.rmtree(path)
    os.replace(tmp, path)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)
  return path


def is_export(path) -> bool:
  """Whether `path` is a directory holding a SavedModel (not checked further)."""
  return os.path.isdir(path) and (os.path.exists(os.path.join(path, "saved_model.pb")) or
                                  os.path.exists(os.path.join(path, "saved_model.pbtxt")))


def _read_metadata(loaded, path) -> dict:
  """The export's metadata, checked for the keys and types `load_export` reads."""
  def bad(reason):
    return ValueError(f"{path!r} is not a valid keras_l2o export: {reason}.")
  try:
    metadata = json.loads(loaded.keras_l2o_metadata.numpy().decode("utf-8"))
  except (AttributeError, TypeError, UnicodeDecodeError, ValueError) as e:
    raise bad(f"its keras_l2o_metadata is not JSON ({e})") from e
  if not isinstance(metadata, dict):
    raise bad(f"its keras_l2o_metadata is a {type(metadata).__name__}, not a JSON object")
  if metadata.get("format") != FORMAT or not isinstance(metadata.get("format_version"), int) or (
      metadata["format_version"] > FORMAT_VERSION):
    raise ValueError(f"{path!r} has export format {metadata.get('format')!r} version "
                     f"{metadata.get('format_version')!r}; this keras_l2o reads {FORMAT!r} up to "
                     f"version {FORMAT_VERSION}.")
  config, paths = metadata.get("optimizer_config"), metadata.get("meta_param_paths")
  if not isinstance(config, dict) or not isinstance(config.get("rule"), dict):
    raise bad("its metadata has no `optimizer_config` object with a `rule`")
  if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
    raise bad("its metadata has no `meta_param_paths` list of names")
  return metadata


def _meta_param_values(loaded, paths, path):
  """The exported meta-parameter arrays, one per path, bounded in size before copying."""
  variables = getattr(loaded, "meta_param_variables", None)
  if variables is None or len(variables) != len(paths):
    raise ValueError(f"{path!r} is not a valid keras_l2o export: it holds "
                     f"{'no' if variables is None else len(variables)} meta-parameter "
                     f"variables for {len(paths)} meta-parameter names.")
  total = sum(int(tf.TensorShape(v.shape).num_elements() or 0) for v in variables)
  validation.check_meta_param_count("exported", total)
  return [v.numpy() for v in variables]


def load_export(path):
  """Loads a keras_l2o SavedModel export back as a `LearnedOptimizer`.

  Args:
    path: a directory written by `export_optimizer` / `LearnedOptimizer.export`.

  Returns:
    A `keras_l2o.LearnedOptimizer` equal to the exported one (fresh state).

  Raises:
    ValueError: if `path` is not a SavedModel, a SavedModel that keras_l2o did
      not write, or a damaged or crafted one (unreadable files, metadata that
      is not what keras_l2o writes, meta-parameters that do not fit the rule
      or are not finite, sizes beyond `keras_l2o.validation`'s bounds); the
      message says which.
  """
  from keras_l2o import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  if not is_export(path):
    raise ValueError(f"{path!r} is not a keras_l2o export: no saved_model.pb in that directory.")
  try:
    loaded = tf.saved_model.load(path)
  except Exception as e:  # pylint: disable=broad-except  (DataLossError, OSError, ParseError, ...)
    first_line = (str(e).strip().splitlines() or [""])[0][:300]
    raise ValueError(f"{path!r} could not be read as a SavedModel ({type(e).__name__}: "
                     f"{first_line}).") from e
  if not hasattr(loaded, "keras_l2o_metadata"):
    raise ValueError(f"{path!r} is a SavedModel but not a keras_l2o export "
                     "(it has no keras_l2o_metadata).")
  metadata = _read_metadata(loaded, path)
  values = _meta_param_values(loaded, metadata["meta_param_paths"], path)
  config = dict(metadata["optimizer_config"])
  try:
    config["meta_params"] = meta_params_lib.unflatten_paths(zip(metadata["meta_param_paths"],
                                                                values))
    return optimizer_lib.LearnedOptimizer.from_config(config)
  except Exception as e:  # pylint: disable=broad-except  (any failure is the file's)
    raise ValueError(f"{path!r} is not a valid keras_l2o export: its optimizer could not be "
                     f"rebuilt ({type(e).__name__}: {e})") from e
