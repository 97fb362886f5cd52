"""The optimizers the suite compares: today's baselines and learned optimizers.

Baselines, as practitioners run them (Keras's own optimizers):

* `adam@1e-3`: `keras.optimizers.Adam(1e-3)`, untuned, the default users start from.
* `adamw`: `AdamW` with linear warm-up over the first 5% of the steps then cosine
  decay to 0 (`keras.optimizers.schedules.CosineDecay(warmup_steps=...)`); the peak
  learning rate and the weight decay are tuned.
* `muon`: `keras.optimizers.Muon` (its AdamW part for biases, norms and
  embeddings) on the same warm-up + cosine schedule; the learning rate is tuned.
* `schedule_free_adamw`: schedule-free AdamW with 5% warm-up and no schedule (it
  needs none); the learning rate is tuned. It is
  `keras_l2o.suite.schedule_free.ScheduleFreeAdamW`, Keras's optimizer with the
  step its paper defines (Keras 3.15's reduces to primal averaging, see there).
* `adam`: `Adam` at a constant, tuned learning rate.

Learned optimizers run untuned, with the learning rate their card ships; an
entry marked `+cosine` (`pretrained:NAME+cosine`) runs that rate as the peak of
the AdamW and Muon baselines' warm-up + cosine schedule over the task's horizon,
as `keras_l2o.pretrained.get(NAME, num_training_steps=horizon)` gives it.
"""

import dataclasses
import itertools
from typing import Callable, Optional

import keras

from keras_l2o import optimizer as optimizer_lib
from keras_l2o import schedules
from keras_l2o.suite import schedule_free

# Learning-rate grids (log, half a decade apart) and AdamW's weight-decay grid.
FULL_LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
# The quick grids: 3 rates around where the full grid's argmin fell (a first quick run with
# rates one half-decade lower picked the largest rate for every baseline on the first 3 tasks).
QUICK_LR_GRIDS = {"adamw": (1e-3, 3e-3, 1e-2), "adam": (1e-3, 3e-3, 1e-2),
                  "muon": (3e-3, 1e-2, 3e-2), "schedule_free_adamw": (3e-3, 1e-2, 3e-2)}
FULL_WD_GRID = (0.01, 0.1)
QUICK_WD_GRID = (0.01,)
TUNED_BASELINES = ("adamw", "muon", "schedule_free_adamw", "adam")
BASELINES = ("adam@1e-3",) + TUNED_BASELINES
REFERENCE = "adamw"  # speed-ups are measured against tuned AdamW


@dataclasses.dataclass(frozen=True)
class Choice:
  """An optimizer of the comparison.

  Attributes:
    name: the name in reports (`adamw`, `pretrained:l2o-mlp-general`, ...).
    make: `make(horizon, **setting) -> keras.optimizers.Optimizer`, a fresh one.
    grid: the settings tuned over (dicts of keyword arguments of `make`);
      empty for an untuned optimizer.
  """
  name: str
  make: Callable
  grid: tuple = ()

  @property
  def tuned(self) -> bool:
    return bool(self.grid)


def _make_adamw(horizon, learning_rate, weight_decay):
  return keras.optimizers.AdamW(schedules.warmup_cosine(learning_rate, horizon),
                                weight_decay=weight_decay)


def _make_muon(horizon, learning_rate):
  return keras.optimizers.Muon(schedules.warmup_cosine(learning_rate, horizon))


def _make_schedule_free(horizon, learning_rate):
  return schedule_free.ScheduleFreeAdamW(learning_rate,
                                         warmup_steps=schedules.warmup_steps(horizon))


def _make_adam(horizon, learning_rate):
  del horizon
  return keras.optimizers.Adam(learning_rate)


def setting_grid(name: str, quick: bool) -> tuple:
  """The settings a tuned baseline is tuned over (each a dict of `make` keywords)."""
  rates = QUICK_LR_GRIDS[name] if quick else FULL_LR_GRID
  if name == "adamw":
    decays = QUICK_WD_GRID if quick else FULL_WD_GRID
    return tuple({"learning_rate": lr, "weight_decay": wd}
                 for lr, wd in itertools.product(rates, decays))
  return tuple({"learning_rate": lr} for lr in rates)


def baseline(name: str, quick: bool = False) -> Choice:
  """A baseline by name (see the module docstring).

  Raises:
    ValueError: for an unknown name (the message lists the valid ones).
  """
  makers = {"adamw": _make_adamw, "muon": _make_muon,
            "schedule_free_adamw": _make_schedule_free, "adam": _make_adam}
  if name == "adam@1e-3":
    return Choice(name, lambda horizon: keras.optimizers.Adam(1e-3))
  if name not in makers:
    raise ValueError(f"Unknown suite baseline {name!r}. Valid baselines: {', '.join(BASELINES)}.")
  return Choice(name, makers[name], setting_grid(name, quick))


def learned(name: str, factory: Callable, on_schedule: bool = False) -> Choice:
  """An untuned learned optimizer: `factory()` returns a fresh `LearnedOptimizer`.

  With `on_schedule`, it runs as a user who knows the run's length would run
  it: its learning rate (the card's) becomes the peak of
  `keras_l2o.schedules.warmup_cosine` over the task's horizon, the schedule
  of the AdamW and Muon baselines. Nothing is tuned.
  """
  if not on_schedule:
    return Choice(name, lambda horizon: factory())
  return Choice(name, lambda horizon: on_warmup_cosine(factory(), horizon))


def on_warmup_cosine(optimizer, num_training_steps):
  """A fresh `LearnedOptimizer` like `optimizer` (its rule, meta-parameters and weight decay)
  whose rate follows `warmup_cosine` to its own."""
  peak = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
  values = keras.tree.map_structure(keras.ops.convert_to_numpy, optimizer.meta_params)
  return optimizer_lib.LearnedOptimizer(
      optimizer.rule, meta_params=values,
      learning_rate=schedules.warmup_cosine(peak, num_training_steps),
      weight_decay=optimizer.weight_decay)


def setting_key(setting: Optional[dict]) -> str:
  """A stable text key of a setting (`"untuned"` for None or {})."""
  if not setting:
    return "untuned"
  return ",".join(f"{k}={v:g}" for k, v in sorted(setting.items()))
