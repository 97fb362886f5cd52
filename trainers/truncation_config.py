"""`TruncationConfig`: the settings every truncated meta-trainer shares (BPTT, PES / ES).

Both trainers take meta-steps over truncations of `unroll_length` inner steps,
apply the meta-gradient with Adam (global-norm clipped), validate, keep the
best meta-parameters and checkpoint; these fields say how. Each trainer's
configuration (`trainers.bptt.BPTTConfig`, `trainers.pes.PESConfig`) adds its
own fields and may give a shared one another default. The command line makes
one flag per field (`scripts.config_flags`); a flag two configurations share
takes the first's definition.
"""

import dataclasses
from typing import Optional

from . import base

META_OBJECTIVES = ("sum", "log_ratio")
_field = base.config_field


@dataclasses.dataclass
class TruncationConfig:
  """Fields of truncated meta-training; see `BPTTConfig` and `PESConfig`."""
  num_steps: int = _field(1000, "Meta-gradient steps (truncations).", lower_bound=1,
                          flag_default=None)
  unroll_length: int = _field(20, "Optimizer steps per truncation.", lower_bound=1)
  meta_learning_rate: float = _field(1e-3, "Adam learning rate of the meta-parameters.",
                                     number="positive")
  meta_clipnorm: Optional[float] = _field(1.0, "Global-norm clip of the meta-gradient (0: off).",
                                          number="non_negative", zero_is_none=True)
  meta_objective: str = _field("sum", "Meta-loss form.", choices=META_OBJECTIVES)
  validation_every: int = _field(100, "Meta-steps between validations.", lower_bound=1,
                                 flag_default=None)
  validation_problems: int = _field(8, "Held-out problems per validation.", lower_bound=1,
                                    flag_default=None)
  patience: Optional[int] = _field(None, "Stop after this many validations without "
                                   "improvement.", lower_bound=1)
  checkpoint_every: int = _field(50, "Meta-steps between checkpoints.", lower_bound=1)
  checkpoints_kept: int = _field(3, "Newest checkpoints kept in checkpoints/ (older ones are "
                                 "deleted).", lower_bound=1)
  log_every: int = _field(10, "Meta-steps between metrics records.", lower_bound=1)
  learning_rate: float = _field(1.0, "Multiplier of the rule's output during meta-training.",
                                number="positive")
  seed: int = _field(0, "Seed of the meta-parameters and of the problem family.")

  def validate(self):
    """Raises ValueError naming the first bad field, with the allowed values (`base.check_fields`)."""
    base.check_fields(self)
