"""What an evaluation runs: `OptimizerSpec`s of baselines and learned optimizers."""

import dataclasses
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from keras_l2o import rules as rules_lib

BASELINES = ("sgd", "momentum", "nag", "rmsprop", "adam", "adagrad")
# Names of the scipy baselines and their `scipy.optimize.minimize` methods.
SCIPY_BASELINES = {"cg": "CG", "lbfgs": "L-BFGS-B"}


@dataclasses.dataclass
class OptimizerSpec:
  """What to run: a rule, its meta-parameters and learning rate (None: tune it).

  A scipy baseline has `rule=None` and `scipy_method` set ("CG", "L-BFGS-B").
  """
  name: str
  rule: object
  meta_params: dict
  learning_rate: Optional[object] = None  # float, schedule, or None for "tune"
  scipy_method: Optional[str] = None

  @property
  def tuned(self) -> bool:
    return self.learning_rate is None and self.scipy_method is None


def baseline(name: str, learning_rate=None) -> OptimizerSpec:
  """A hand-designed baseline by name (its learning rate tuned when None)."""
  if name not in BASELINES:
    raise ValueError(f"Unknown baseline {name!r}. Valid baselines: {', '.join(BASELINES)}.")
  return OptimizerSpec(name, rules_lib.get(name), {}, learning_rate)


def scipy_baseline(name: str) -> OptimizerSpec:
  """Conjugate gradient (`"cg"`) or L-BFGS (`"lbfgs"`) by `scipy.optimize.minimize`."""
  if name not in SCIPY_BASELINES:
    raise ValueError(f"Unknown scipy baseline {name!r}. Valid scipy baselines: "
                     f"{', '.join(SCIPY_BASELINES)}.")
  return OptimizerSpec(name, None, {}, None, SCIPY_BASELINES[name])


def check_full_batch(family):
  """Raises ValueError unless `family` has a full-batch objective (what CG / L-BFGS need)."""
  if not getattr(family, "full_batch", False):
    raise ValueError(f"The scipy baselines ({', '.join(SCIPY_BASELINES)}) need a full-batch, "
                     f"deterministic objective; problem family {family.name!r} has none "
                     "(full_batch=False: its batches change from step to step). Families with "
                     "one: quadratic, logistic_regression, robust_linear_regression, "
                     "two_layer_net.")


def from_optimizer(name: str, optimizer) -> OptimizerSpec:
  """A `LearnedOptimizer` (its rule, meta-parameters and learning rate) as a spec.

  Keras-side options of the optimizer (clipping, weight decay, EMA) are not
  part of the evaluation unroll; a warning says so when they are set.
  """
  extras = {k: getattr(optimizer, k) for k in ("clipnorm", "clipvalue", "global_clipnorm",
                                               "weight_decay") if getattr(optimizer, k, None)}
  if extras or getattr(optimizer, "use_ema", False):
    logging.warning("Evaluating %s without its Keras options %s (the evaluation unroll applies "
                    "the rule and learning rate only).", name, extras)
  meta = tf.nest.map_structure(lambda v: tf.convert_to_tensor(v), optimizer.meta_params)
  lr = optimizer._learning_rate  # pylint: disable=protected-access
  if not callable(lr):  # a variable holding a constant rate (schedules stay callables)
    lr = float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))
  return OptimizerSpec(name, optimizer.rule, meta, lr)
