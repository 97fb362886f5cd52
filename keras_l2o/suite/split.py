"""The training / suite split: no suite task is a meta-training problem.

A problem is identified by `(dataset, architecture)`, with architecture one of
the coarse kinds of `keras_l2o.suite.base.ARCHITECTURES` (or the problem's own
name for kinds the suite does not have, e.g. `quadratic`). `training_uses()`
collects the identities of every registered meta-training problem family (at its
default configuration) and of every shipped pretrained optimizer's training
problems (from its card), so families registered later are covered without
changes here. A family can state its identities itself with a
`training_identities(config) -> [(dataset, architecture), ...]` static method or
classmethod (e.g. a mixture of several datasets); otherwise the dataset is the
configuration's `dataset` (or the problem name) and the architecture follows the
name (`*conv*` -> conv, `*mlp*` -> mlp, ...).
"""

import inspect

from keras_l2o import pretrained
from keras_l2o import problems
from keras_l2o.suite import base

_NAME_HINTS = (("autoencoder", "autoencoder"), ("conv", "conv"), ("transformer", "transformer"),
               ("attention", "transformer"), ("lstm", "recurrent"), ("gru", "recurrent"),
               ("rnn", "recurrent"), ("embedding", "embedding"), ("mlp", "mlp"))


def _factory(name):
  return problems._REGISTRY[name]  # pylint: disable=protected-access


def _defaults(factory) -> dict:
  try:
    parameters = inspect.signature(factory).parameters.values()
  except (TypeError, ValueError):
    return {}
  return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def identities(name: str, config=None) -> set:
  """`{(dataset, architecture)}` of the registered problem `name` under `config`."""
  factory = _factory(name)
  settings = {**_defaults(factory), **(config or {})}
  target = getattr(factory, "func", factory)  # functools.partial -> the class
  own = getattr(target, "training_identities", None)
  if own is not None:
    return {tuple(pair) for pair in own(settings)}
  dataset = settings.get("dataset") or name
  architecture = next((kind for hint, kind in _NAME_HINTS if hint in name.lower()), name)
  if architecture == name:
    architecture = next((kind for hint, kind in _NAME_HINTS
                         if hint in type(target).__name__.lower() or
                         hint in getattr(target, "__name__", "").lower()), name)
  return {(str(dataset), architecture)}


def _card_problems(card):
  trained = card.get("trained_on") or {}
  names = [n for n in str(trained.get("problem", "")).split(",") if n]
  config = trained.get("problem_config") or {}
  for name in names:
    own = config.get(name) if len(names) > 1 and isinstance(config.get(name), dict) else config
    yield name, {k: v for k, v in own.items() if not isinstance(v, dict)}


def training_uses() -> dict:
  """`{(dataset, architecture): [where it is used, ...]}` over meta-training problems.

  Covers every registered problem family and every pretrained card's
  `trained_on` problems.
  """
  uses = {}
  for name in problems.names():
    for pair in identities(name):
      uses.setdefault(pair, []).append(f"problem family {name!r}")
  for card_name in pretrained.names():
    for name, config in _card_problems(pretrained.card(card_name)):
      if name in problems.names():
        for pair in identities(name, config):
          uses.setdefault(pair, []).append(f"pretrained {card_name!r}")
  return uses


def overlaps(task_names=None) -> dict:
  """`{task: [meta-training uses]}` of suite tasks sharing a training identity (should be {})."""
  uses = training_uses()
  found = {}
  for name in task_names or base.names():
    spec = base.get(name)
    pair = (spec.dataset, spec.architecture)
    if pair in uses:
      found[name] = uses[pair]
  return found
