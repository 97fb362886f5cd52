"""Problems to optimise, and families that sample them with disjoint splits.

A `ProblemFamily` is a static object with pure TensorFlow functions; a
`Problem` is one draw from it: a dict of tensors (its data, initial point,
batch seed, ...). Keeping the draw as tensors lets one traced unroll serve
every problem of a family without retracing: the tensors are arguments.

The family functions:

* `init_params(tensors) -> [tensor, ...]`: the initial parameters.
* `batch(tensors, step) -> nested tensors`: the minibatch of a step,
  deterministic in (problem, step); sampled with `tf.random.stateless_*`
  (do not call it under XLA: stateless random numbers differ there).
* `losses(tensors, params, batch) -> [num_instances]`: independent losses.
  Optimisers see the gradient of their *sum* (so every instance gets its own
  gradient); the reported loss is their *mean*.

Draws from the `train`, `validation` and `test` splits never overlap: each
problem's seed is derived from `(family seed, split, index)` by
`numpy.random.SeedSequence`, and data-based families also draw their batches
from disjoint parts of the dataset.
"""

import abc
import dataclasses

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One sampled problem: which draw it is, and its tensors."""
  family_name: str
  split: str
  index: int
  tensors: dict


def problem_seed(family_seed: int, split: str, index: int) -> int:
  """A 31-bit seed unique to `(family_seed, split, index)`."""
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}. Valid splits: {list(SPLITS)}.")
  if not isinstance(index, (int, np.integer)) or index < 0:
    raise ValueError(f"Problem index must be a non-negative integer. Received: {index!r}")
  sequence = np.random.SeedSequence([int(family_seed), SPLITS.index(split), int(index)])
  return int(sequence.generate_state(1, np.uint32)[0] >> 1)


class ProblemFamily(abc.ABC):
  """A family of problems; subclasses implement the four methods below.

  Attributes:
    name: registry name.
    default_horizon: the number of optimizer steps a problem is meant for.
    full_batch: whether `batch()` is the same at every step, so that `loss`
      is one deterministic objective of the parameters (what the scipy
      CG / L-BFGS baselines of `keras_l2o.evaluation` need).
    has_heldout_data: whether `heldout_batch` draws examples a problem never
      trains on (a held-out meta-loss needs it).
  """

  name = ""
  default_horizon = 100
  full_batch = False
  has_heldout_data = False

  def __init__(self, seed: int = 0, **config):
    self.seed = int(seed)
    self._config = dict(config)

  @classmethod
  def meta_train_defaults(cls, **registered) -> dict:
    """Defaults of `keras-l2o-meta-train`'s settings a user did not set, for this family.

    Keys are settings (`num_steps`, `validation_every`, `validation_problems`,
    `problem_config`, ...); a trainer's own entry (e.g. `"gps": {...}`, or
    `"bptt": {"intra_op_threads": 1}`) overrides them under that trainer.
    Thread-pool sizes are read from the trainer entries only.

    Args:
      **registered: the keywords the registry fixes (e.g. `dataset="mnist"`
        for `mnist_mlp`).

    Returns:
      A new dict (empty: the command line's own defaults).
    """
    del registered
    return {}

  def get_config(self) -> dict:
    """JSON-serialisable configuration (the family seed included)."""
    return {"seed": self.seed, **self._config}

  def __repr__(self):
    return f"{type(self).__name__}({self.get_config()})"

  def sample(self, split: str, index: int) -> Problem:
    """Draws problem `index` of `split`, the same one every time."""
    seed = problem_seed(self.seed, split, index)
    tensors = self._sample_tensors(split, np.random.default_rng(seed), seed)
    return Problem(self.name, split, int(index), tensors)

  @abc.abstractmethod
  def _sample_tensors(self, split: str, rng: np.random.Generator, seed: int) -> dict:
    """Returns the tensors of one draw, using only `rng` / `seed` for randomness."""

  @abc.abstractmethod
  def init_params(self, tensors) -> list:
    """The initial parameters of the problem (list of tensors)."""

  @abc.abstractmethod
  def batch(self, tensors, step):
    """The minibatch used at `step` (an int64 scalar tensor)."""

  @abc.abstractmethod
  def losses(self, tensors, params, batch):
    """Independent losses `[num_instances]` at `params` on `batch`."""

  def heldout_batch(self, tensors, step):
    """A minibatch, at `step`, of examples the problem never trains on.

    Raises:
      NotImplementedError: the family has no such examples
        (`has_heldout_data` is False).
    """
    raise NotImplementedError(f"Problem family {self.name!r} has no held-out examples; a "
                              f"held-out meta-loss needs a family with data splits (e.g. "
                              f"'mlp', 'general_tasks').")

  def loss(self, tensors, params, batch):
    """The reported loss: the mean of `losses`."""
    return tf.reduce_mean(self.losses(tensors, params, batch))

  def num_parameters(self) -> int:
    """Number of optimised scalars in one problem."""
    problem = self.sample("train", 0)
    return int(sum(np.prod(p.shape) for p in self.init_params(problem.tensors)))


def batch_indices(seed, step, size, offset, batch_size):
  """`batch_size` indices in `[offset, offset + size)`, stateless in (seed, step)."""
  seeds = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
  local = tf.random.stateless_uniform([batch_size], seeds, minval=0,
                                      maxval=tf.cast(size, tf.int64), dtype=tf.int64)
  return local + tf.cast(offset, tf.int64)
