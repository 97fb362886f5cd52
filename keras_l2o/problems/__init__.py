"""Problems to optimise: families that sample them, and a registry of names.

`keras_l2o.problems.get(name, **config)` returns a `ProblemFamily`; `names()`
lists the registered ones. `KerasModelFamily` (any `keras.Model` with a
dataset and a loss) is built directly, as it needs objects.

Example:

>>> from keras_l2o import problems
>>> problems.names()[:3]
['conv', 'digits_mlp', 'general_tasks']
>>> family = problems.get("quadratic", seed=1)
>>> family.sample("validation", 0).split
'validation'
"""

import functools
import inspect

from keras_l2o.problems.base import Problem
from keras_l2o.problems.base import problem_seed
from keras_l2o.problems.base import ProblemFamily
from keras_l2o.problems.base import SPLITS
from keras_l2o.problems.conv import ConvFamily
from keras_l2o.problems.general_tasks import GeneralTasks
from keras_l2o.problems.keras_model import KerasModelFamily
from keras_l2o.problems.li_malik import LogisticRegression
from keras_l2o.problems.li_malik import RobustLinearRegression
from keras_l2o.problems.li_malik import TwoLayerNet
from keras_l2o.problems.mlp import ClassifierFamily
from keras_l2o.problems.mlp import MLPFamily
from keras_l2o.problems.mixture import MixtureFamily
from keras_l2o.problems.neural_art import NeuralArtFamily
from keras_l2o.problems.quadratic import Quadratic

_REGISTRY = {}


def register(name: str, factory):
  """Registers `factory(seed=..., **config) -> ProblemFamily` under `name`.

  The accepted configuration keys are the factory's keyword parameters (a
  class's `__init__` ones; a `functools.partial` fixes defaults).

  Args:
    name: the registry name.
    factory: a `ProblemFamily` subclass or a callable returning one.

  Returns:
    `factory`, unchanged.

  Raises:
    ValueError: if `name` is taken by another factory.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"A problem name must be a non-empty string. Received: {name!r}")
  if not callable(factory):
    raise ValueError(f"A problem factory must be callable. Received: {factory!r}")
  existing = _REGISTRY.get(name)
  if existing is not None and existing is not factory:
    raise ValueError(f"A problem named {name!r} is already registered ({existing!r}).")
  _REGISTRY[name] = factory
  return factory


def names() -> list:
  """The names of all registered problems, sorted."""
  return sorted(_REGISTRY)


def config_names(name: str):
  """The configuration keys `get(name, ...)` accepts, or None if it takes any."""
  parameters = inspect.signature(_REGISTRY[name]).parameters.values()
  if any(p.kind == p.VAR_KEYWORD for p in parameters):
    return None
  return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def get(name, **config) -> ProblemFamily:
  """Returns the family registered as `name`, configured by keyword arguments.

  Args:
    name: a registered name (see `names()`), or a `ProblemFamily`, returned as
      is (no config allowed then).
    **config: the family's configuration, e.g. `seed=0, hidden_sizes=(40,)`;
      `get(name, **family.get_config())` rebuilds `family`.

  Returns:
    A `ProblemFamily`.

  Raises:
    ValueError: for an unknown name (the message lists the valid ones) or a
      configuration key the family does not accept.
  """
  if isinstance(name, ProblemFamily):
    if config:
      raise ValueError(f"Config {sorted(config)} given together with a ProblemFamily {name!r}.")
    return name
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f"Unknown problem {name!r}. Valid problems: {', '.join(names())}.")
  allowed = config_names(name)
  unknown = sorted(set(config) - set(allowed)) if allowed is not None else []
  if unknown:
    raise ValueError(f"Problem {name!r} got unexpected config {unknown}. Allowed: {allowed}.")
  return _REGISTRY[name](**config)


def meta_train_defaults(name: str) -> dict:
  """The defaults `keras-l2o-meta-train` gives the unset settings of problem `name`.

  They live on the family class (`ProblemFamily.meta_train_defaults`); a
  registered `functools.partial` passes its fixed keywords (e.g. the dataset).

  Args:
    name: a registered problem name.

  Returns:
    A new dict (see `ProblemFamily.meta_train_defaults`).

  Raises:
    ValueError: for an unknown name.

  Example:

  >>> from keras_l2o import problems
  >>> problems.meta_train_defaults("digits_mlp")["num_steps"]
  1000
  """
  if name not in _REGISTRY:
    raise ValueError(f"Unknown problem {name!r}. Valid problems: {', '.join(names())}.")
  factory = _REGISTRY[name]
  keywords = {}
  if isinstance(factory, functools.partial):
    factory, keywords = factory.func, dict(factory.keywords)
  method = getattr(factory, "meta_train_defaults", None)
  return method(**keywords) if method is not None else {}


register("quadratic", Quadratic)
register("mnist_mlp", functools.partial(MLPFamily, dataset="mnist"))
register("digits_mlp", functools.partial(MLPFamily, dataset="digits"))
register("conv", ConvFamily)
register("logistic_regression", LogisticRegression)
register("robust_linear_regression", RobustLinearRegression)
register("two_layer_net", TwoLayerNet)
register("general_tasks", GeneralTasks)
register("neural_art", NeuralArtFamily)

__all__ = ["ClassifierFamily", "ConvFamily", "GeneralTasks", "KerasModelFamily", "LogisticRegression",
           "MLPFamily", "NeuralArtFamily", "Problem", "ProblemFamily", "Quadratic",
           "RobustLinearRegression",
           "SPLITS", "TwoLayerNet", "config_names", "get", "meta_train_defaults", "names", "problem_seed", "register"]
