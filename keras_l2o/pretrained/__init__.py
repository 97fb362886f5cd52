"""Meta-trained optimizers shipped with keras_l2o.

Each pretrained optimizer is two small files in this folder: `NAME.npz` (the
meta-parameters, one array per '/'-joined path) and `NAME.json` (its card: the
rule, the learning rate, what it was trained on and for how long, where it is
known to be weak, and the command that reproduces it from a seed).

>>> import keras_l2o
>>> "l2l-quadratic" in keras_l2o.pretrained.names()
True
>>> optimizer = keras_l2o.pretrained.get()            # the general-purpose default
>>> isinstance(optimizer, keras_l2o.LearnedOptimizer)
True
"""

import json
import os

import numpy as np

from keras_l2o import meta_params as meta_params_lib

_HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = "l2o-mlp-general"


def names() -> list:
  """Names of the shipped pretrained optimizers, sorted."""
  return sorted(f[:-5] for f in os.listdir(_HERE)
                if f.endswith(".json") and os.path.exists(os.path.join(_HERE, f[:-5] + ".npz")))


def card(name: str = DEFAULT) -> dict:
  """The card of a pretrained optimizer: training data, steps, weaknesses, command, results."""
  _check(name)
  with open(os.path.join(_HERE, name + ".json"), encoding="utf-8") as f:
    return json.load(f)


def meta_params(name: str = DEFAULT) -> dict:
  """The meta-parameters of a pretrained optimizer (nested dict of float32 arrays)."""
  _check(name)
  with np.load(os.path.join(_HERE, name + ".npz")) as data:
    return meta_params_lib.unflatten_paths((k, data[k].astype(np.float32)) for k in data.files)


def get(name: str = DEFAULT, **kwargs):
  """Returns a pretrained optimizer as a `LearnedOptimizer`, ready for `model.compile`.

  Args:
    name: one of `names()`; default: the general-purpose default.
    **kwargs: passed on to `LearnedOptimizer` (e.g. `learning_rate`,
      `clipnorm`); the card's learning rate is used unless given.

  Raises:
    ValueError: for an unknown name (the message lists the shipped ones).
  """
  from keras_l2o import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from keras_l2o import rules  # pylint: disable=g-import-not-at-top
  info = card(name)
  kwargs.setdefault("learning_rate", info.get("learning_rate", 1.0))
  kwargs.setdefault("name", "pretrained_" + name.replace("-", "_"))
  return optimizer_lib.LearnedOptimizer(rules.deserialize(info["rule"]),
                                        meta_params=meta_params(name), **kwargs)


def save(name: str, optimizer_or_rule, meta_params_value, card_fields: dict, directory=_HERE):
  """Writes `NAME.npz` + `NAME.json` (used by the scripts that produce pretrained optimizers)."""
  from keras_l2o import rules  # pylint: disable=g-import-not-at-top
  rule = rules.get(optimizer_or_rule) if not hasattr(optimizer_or_rule, "rule") else (
      optimizer_or_rule.rule)
  values = meta_params_lib.validate(rule, meta_params_value)
  flat = dict(meta_params_lib.flatten_with_paths(values))
  np.savez(os.path.join(directory, name + ".npz"), **flat)
  info = {"name": name, "rule": rules.serialize(rule), **card_fields}
  with open(os.path.join(directory, name + ".json"), "w", encoding="utf-8") as f:
    json.dump(info, f, indent=2, sort_keys=True)
  return info


def _check(name):
  available = names()
  if name not in available:
    raise ValueError(f"Unknown pretrained optimizer {name!r}. Shipped: "
                     f"{', '.join(available) if available else 'none yet'}.")
