"""The suite's task type and registry.

A suite task is a function `seed -> Task`: it builds a fresh Keras model and
draws its data from `seed` (the seed changes the data sample or split, the
initial weights and the batch order). `TaskSpec` holds what the runner and the
split check need without building anything: the name, the kind, the dataset and
architecture it uses, its horizon (steps) and batch size.
"""

import dataclasses
from typing import Callable, Optional

import numpy as np

# Coarse architecture kinds; a meta-training problem of the same kind on the same
# dataset makes a suite task invalid (see `keras_l2o.suite.split`).
ARCHITECTURES = ("mlp", "conv", "autoencoder", "recurrent", "transformer", "embedding")
MIN_HORIZON, MAX_HORIZON = 1000, 10000


@dataclasses.dataclass
class Task:
  """One built task: a compiled-ready model, its data and how to score it.

  Attributes:
    model: an unbuilt-optimizer `keras.Model` (weights drawn from the seed).
    train: `(x, y)` numpy arrays of the training data.
    validation: `(x, y)` held-out data of the same distribution.
    test: `(x, y)` held-out data of the same distribution.
    loss: a Keras loss (object or name).
    horizon: training steps.
    batch_size: examples per step.
    metrics: Keras metric names (e.g. `["accuracy"]`; empty for regression).
  """
  model: object
  train: tuple
  validation: tuple
  test: tuple
  loss: object
  horizon: int
  batch_size: int
  metrics: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """A registered task: its identity and `build(seed) -> Task`."""
  name: str
  kind: str  # "classification", "regression", "reconstruction" or "language_model"
  dataset: str
  architecture: str
  horizon: int
  batch_size: int
  build_fn: Callable
  description: str = ""

  def build(self, seed: int, batch_size: Optional[int] = None) -> Task:
    """The task for `seed` (optionally with another batch size, e.g. for a smoke test)."""
    task = self.build_fn(int(seed))
    task.horizon = self.horizon
    task.batch_size = int(batch_size or self.batch_size)
    return task


_REGISTRY = {}


def register(name, *, kind, dataset, architecture, horizon, batch_size, description=""):
  """Decorator registering `fn(seed) -> Task` as a suite task.

  Raises:
    ValueError: for a taken name, an unknown architecture or a horizon outside
      [1000, 10000].
  """
  if architecture not in ARCHITECTURES:
    raise ValueError(f"Suite task {name!r}: architecture must be one of {ARCHITECTURES}. "
                     f"Received: {architecture!r}")
  if not MIN_HORIZON <= horizon <= MAX_HORIZON:
    raise ValueError(f"Suite task {name!r}: horizon must be in [{MIN_HORIZON}, {MAX_HORIZON}]. "
                     f"Received: {horizon}")

  def decorator(fn):
    if name in _REGISTRY:
      raise ValueError(f"A suite task named {name!r} is already registered.")
    _REGISTRY[name] = TaskSpec(name, kind, dataset, architecture, horizon, batch_size, fn,
                               description or (fn.__doc__ or "").strip().split("\n")[0])
    return fn
  return decorator


def names() -> list:
  """Names of the registered suite tasks, sorted."""
  return sorted(_REGISTRY)


def get(name: str) -> TaskSpec:
  """The `TaskSpec` registered as `name`.

  Raises:
    ValueError: for an unknown name (the message lists the valid ones).
  """
  if name not in _REGISTRY:
    raise ValueError(f"Unknown suite task {name!r}. Valid tasks: {', '.join(names())}.")
  return _REGISTRY[name]


def split_arrays(x, y, seed, fractions=(0.6, 0.2, 0.2)):
  """Shuffles `(x, y)` with `seed` and cuts it into train / validation / test tuples."""
  order = np.random.default_rng(seed).permutation(len(x))
  cut1 = int(round(fractions[0] * len(x)))
  cut2 = cut1 + int(round(fractions[1] * len(x)))
  parts = (order[:cut1], order[cut1:cut2], order[cut2:])
  return tuple((x[p], y[p]) for p in parts)


def standardise(train, *others):
  """Scales features by the training part's mean and standard deviation."""
  mean = train[0].mean(axis=0)
  std = train[0].std(axis=0) + 1e-6
  return tuple(((x - mean) / std).astype(np.float32) for x in (train[0],) + tuple(
      o[0] for o in others))
