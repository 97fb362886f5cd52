"""The meta-trainers by name: what `keras-l2o-meta-train --trainer=NAME` builds.

A trainer is one module (its trainer class and its configuration dataclass)
plus one `register` line here. The command line reads everything else from
the entry: the `--trainer` choices, one flag per configuration field
(`scripts.config_flags`), the rule it trains by default and which it accepts,
the strategies it runs under, and how it is built and resumed.

Example:

>>> from trainers import registry
>>> registry.names()
['bptt', 'gps', 'pes', 'es']
>>> spec = registry.get("gps").for_rule("gps_policy")
>>> spec.config.__name__, spec.step_field
('GPSConfig', 'iterations')
"""

import dataclasses
import importlib
from typing import Optional

from . import bptt
from . import pes
from .gps import config as gps_config


@dataclasses.dataclass(frozen=True)
class TrainerSpec:
  """How the command line builds one trainer.

  Attributes:
    trainer: `"module:Class"` of the trainer (the module named within this
      package, e.g. `"gps.trainer:GPSTrainer"`), imported when it is built; it is
      called as `Class(rule, family, config, save_dir, extra_config=...,
      strategy=...)`.
    config: its configuration dataclass (fields made with
      `trainers.base.config_field`).
    default_rule: the rule it trains when `--rule` is not given.
    rules: the rules it trains (empty: any learned rule).
    fixed: `(field, value)` pairs the trainer's name sets in its configuration.
    strategies: the `--strategy` values it runs under (None: any).
    step_field: the configuration field `--num_steps` sets.
    json_flag: a flag holding a JSON object of further configuration fields,
      and the per-problem defaults' key of the same name (see
      `ProblemFamily.meta_train_defaults`); None: none.
    one_family: whether it refuses a mixture of problem families.
    flat_full_batch: whether it needs one full-batch problem whose parameters
      are one flat vector (the rule's `dimension` is then set to its size).
    by_rule: `(rule, TrainerSpec)` pairs: another trainer for that rule.
    by_strategy: `(strategy, "module:Class")` pairs (named as `trainer`): another trainer class
      under that strategy.
  """

  trainer: str
  config: type
  default_rule: str = "lstm"
  rules: tuple = ()
  fixed: tuple = ()
  strategies: Optional[tuple] = None
  step_field: str = "num_steps"
  json_flag: Optional[str] = None
  one_family: bool = False
  flat_full_batch: bool = False
  by_rule: tuple = ()
  by_strategy: tuple = ()

  def for_rule(self, rule: str) -> "TrainerSpec":
    """The entry that trains `rule` (`by_rule`'s, else this one)."""
    return dict(self.by_rule).get(rule, self)

  def config_classes(self) -> tuple:
    """Its configuration class and those of its `by_rule` entries, without repeats."""
    classes = [self.config] + [spec.config for _, spec in self.by_rule]
    return tuple(dict.fromkeys(classes))

  def trainer_class(self, strategy: str = "default") -> type:
    """The trainer class under `strategy` (imported now)."""
    module, name = dict(self.by_strategy).get(strategy, self.trainer).split(":")
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)


_TRAINERS = {}


def register(name: str, spec: TrainerSpec) -> TrainerSpec:
  """Registers `spec` as `--trainer=name`; raises ValueError for a name taken."""
  if name in _TRAINERS:
    raise ValueError(f"A trainer named {name!r} is already registered.")
  _TRAINERS[name] = spec
  return spec


def names() -> list:
  """The registered trainer names, in registration order."""
  return list(_TRAINERS)


def get(name: str) -> TrainerSpec:
  """The entry of trainer `name`; ValueError naming the valid ones for an unknown name."""
  if name not in _TRAINERS:
    raise ValueError(f"--trainer={name!r} is not available. Valid trainers: "
                     f"{', '.join(_TRAINERS)}.")
  return _TRAINERS[name]


def config_classes() -> tuple:
  """Every registered configuration class, BPTT's first (shared flags take its definition)."""
  return tuple(dict.fromkeys(c for spec in _TRAINERS.values() for c in spec.config_classes()))


register("bptt", TrainerSpec(
    "bptt:BPTTTrainer", bptt.BPTTConfig,
    by_strategy=(("parameter_server", "bptt_async:AsyncBPTTTrainer"),)))
register("gps", TrainerSpec(
    "gps.group_trainer:GroupGPSTrainer", gps_config.GroupGPSConfig,
    default_rule="gps_lstm", rules=("gps_policy", "gps_lstm", "gps_general"),
    strategies=("default",), step_field="iterations", json_flag="gps_config", one_family=True,
    by_rule=(("gps_policy", TrainerSpec(
        "gps.trainer:GPSTrainer", gps_config.GPSConfig, default_rule="gps_policy",
        rules=("gps_policy",), strategies=("default",), step_field="iterations",
        json_flag="gps_config", one_family=True, flat_full_batch=True)),)))
register("pes", TrainerSpec("pes:PESTrainer", pes.PESConfig, fixed=(("estimator", "pes"),),
                            strategies=("default", "mirrored", "multi_worker", "tpu")))
register("es", TrainerSpec("pes:PESTrainer", pes.PESConfig, fixed=(("estimator", "es"),),
                           strategies=("default", "mirrored", "multi_worker", "tpu")))
