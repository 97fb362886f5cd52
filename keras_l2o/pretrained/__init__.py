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
DEFAULT = "l2o-mlp-general-pes"


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


def get(name: str = DEFAULT, num_training_steps=None, **kwargs):
  """Returns a pretrained optimizer as a `LearnedOptimizer`, ready for `model.compile`.

  Args:
    name: one of `names()`; default: the general-purpose default.
    num_training_steps: None, or the number of steps the run will take (as
      `model.fit` counts them: epochs x steps per epoch). Given, the learning
      rate follows `keras_l2o.schedules.warmup_cosine`: a linear warm-up over
      the first 5% of the steps to the card's rate (or `learning_rate`), then
      cosine decay to 0. On the held-out suite the default ends below tuned
      AdamW-with-cosine's training loss on 10 of 13 tasks this way, against 6
      of 13 at its constant rate (`docs/RESULTS.md`). Add `weight_decay=3e-3`
      when held-out loss matters more: its test loss is then no worse than
      tuned AdamW's on 9 of 13 tasks instead of 3, its training loss below
      AdamW's on 2 instead of 10.
    **kwargs: passed on to `LearnedOptimizer` (e.g. `learning_rate`,
      `clipnorm`, `weight_decay`); the card's learning rate is used unless
      given.

  Raises:
    ValueError: for an unknown name (the message lists the shipped ones), a
      bad `num_training_steps`, or a `learning_rate` that is already a
      schedule together with `num_training_steps`.

  Example:

  >>> import keras_l2o
  >>> optimizer = keras_l2o.pretrained.get(num_training_steps=1000)
  >>> round(float(optimizer.learning_rate), 3)           # step 0 of the warm-up
  0.0
  >>> _ = optimizer.iterations.assign(50)                 # the end of the warm-up
  >>> round(float(optimizer.learning_rate), 3)
  1.0
  """
  from keras_l2o import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from keras_l2o import rules  # pylint: disable=g-import-not-at-top
  from keras_l2o import schedules  # pylint: disable=g-import-not-at-top
  info = card(name)
  kwargs.setdefault("learning_rate", info.get("learning_rate", 1.0))
  if num_training_steps is not None:
    if callable(kwargs["learning_rate"]):
      raise ValueError("Pass either `num_training_steps` (the warm-up + cosine schedule) or a "
                       "schedule as `learning_rate`, not both. Received: learning_rate="
                       f"{kwargs['learning_rate']!r}, num_training_steps={num_training_steps!r}")
    kwargs["learning_rate"] = schedules.warmup_cosine(kwargs["learning_rate"],
                                                      num_training_steps)
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
