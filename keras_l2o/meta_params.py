"""Meta-parameters: validation against a rule, flattening to named paths."""

import numpy as np
import tensorflow as tf

from keras_l2o import validation


def flatten_with_paths(nested, prefix="") -> list:
  """`[(path, leaf), ...]` sorted by path; paths join dict keys with '/'."""
  if isinstance(nested, dict):
    items = []
    for key in sorted(nested):
      if not isinstance(key, str):
        raise ValueError(f"Meta-parameter keys must be strings. Received key {key!r} under "
                         f"{prefix or 'the top level'}.")
      items += flatten_with_paths(nested[key], f"{prefix}/{key}" if prefix else key)
    return items
  return [(prefix, nested)]


def unflatten_paths(items) -> dict:
  """Inverse of `flatten_with_paths`."""
  out = {}
  for path, leaf in items:
    node = out
    keys = path.split("/")
    for key in keys[:-1]:
      node = node.setdefault(key, {})
    node[keys[-1]] = leaf
  return out


def _display(path):
  return "meta_params" + "".join(f"[{k!r}]" for k in path.split("/"))


def validate(rule, meta_params) -> dict:
  """Checks `meta_params` against what `rule` expects; returns float32 numpy copies.

  Args:
    rule: a `keras_l2o.rules.Rule`.
    meta_params: nested dict of arrays, tensors or variables (or nested lists).

  Returns:
    The same structure with float32 numpy arrays as leaves.

  Raises:
    ValueError: naming the first missing, unexpected, mis-shaped or
      non-numeric entry, or one holding NaN, Inf or a value larger in
      magnitude than `validation.MAX_META_PARAM_MAGNITUDE`, with the expected
      and received values.
  """
  expected = dict(flatten_with_paths(rule.meta_param_shapes()))
  if meta_params is None:
    meta_params = {}
  if not isinstance(meta_params, dict):
    raise ValueError(f"meta_params must be a nested dict for rule {rule.name!r}. "
                     f"Received: {type(meta_params).__name__}.")
  received = dict(flatten_with_paths(meta_params))
  missing = sorted(set(expected) - set(received))
  unexpected = sorted(set(received) - set(expected))
  if missing:
    raise ValueError(f"{_display(missing[0])} is missing; rule {rule.name!r} expects entries "
                     f"{sorted(expected)}. Received entries: {sorted(received)}.")
  if unexpected:
    raise ValueError(f"{_display(unexpected[0])} is not a meta-parameter of rule {rule.name!r}; "
                     f"it expects entries {sorted(expected)}.")
  out = []
  for path, shape in expected.items():
    value = received[path]
    value = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
    if tuple(value.shape) != tuple(shape):
      raise ValueError(f"{_display(path)} has shape {tuple(value.shape)}; rule {rule.name!r} "
                       f"expects shape {tuple(shape)}.")
    out.append((path, validation.check_array(_display(path), value)))
  return unflatten_paths(out)


def to_numpy(meta_params) -> dict:
  """Nested dict of arrays / tensors / variables -> nested dict of numpy arrays."""
  return tf.nest.map_structure(lambda t: np.asarray(t.numpy() if hasattr(t, "numpy") else t),
                               meta_params)


def to_lists(meta_params) -> dict:
  """Nested dict of arrays/tensors -> nested dict of nested Python lists (for JSON)."""
  return tf.nest.map_structure(lambda a: a.astype(np.float32).tolist(), to_numpy(meta_params))
