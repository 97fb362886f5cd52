"""Meta-training by PES or truncated ES over long trajectories (`--trainer=pes` / `--trainer=es`).

Every meta-step continues `num_pairs` antithetic particle pairs by
`unroll_length` inner steps (`trainers.es_estimators`: one vectorised
computation), estimates the meta-gradient from their meta-losses and applies
it with Adam (global-norm clipped). Each pair works on its own training
problem for a trajectory whose length is drawn log-uniformly from
[`min_horizon`, `max_horizon`] (rounded up to whole truncations); the first
trajectory of each pair is cut at a uniformly drawn truncation, so pairs
restart at different meta-steps and every meta-batch mixes truncations from
early and late in training. A pair whose losses or parameters become
non-finite contributes nothing and restarts.

Under a `tf.distribute` strategy the pairs are split evenly over the replicas;
the replicas' estimates are summed and divided by the number of pairs.

A mixture of K problem families (`family.components`, e.g. `general_tasks`)
gives pair i to component i mod K for the whole run (`num_pairs` a multiple of
K): the pairs of one component form a *bank* that runs as one vectorised
computation with that component's functions, and every bank's trajectories
are that component's problems. One bank is the single-family case, unchanged.

The checkpoint holds the meta-parameters, Adam's slots, every particle's inner
state, every pair's problem, accumulated perturbation xi, trajectory length
and index, and the counters the random draws derive from (perturbations from
`(seed, meta-step)`, lengths from `(seed, trajectory index)`), so a killed run
resumes to the same meta-parameters bit for bit.
"""

import dataclasses
import functools
import math
import time
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o import run_directory
from . import base
from . import es_estimators as estimators
from . import loop
from . import truncation_config

_field = base.config_field
_LENGTH_SEED = 18  # mixed into the seed of trajectory lengths
# Per-pair outputs with a leading sign axis ([2, n, ...]); the others are [n, ...].
_SIGNED = ("params", "rule_state", "init_loss", "values", "mean_losses")


@dataclasses.dataclass
class PESConfig(truncation_config.TruncationConfig):
  """Configuration of `PESTrainer` (defaults near Celo2's PES setup, GENERAL.md).

  The fields shared with BPTT are `trainers.truncation_config.TruncationConfig`'s.
  """
  # (the command line's default is BPTT's 1e-3, the flag shared with it)
  meta_learning_rate: float = _field(3e-4, "Adam learning rate of the meta-parameters.",
                                     number="positive", flag_default=1e-3)
  validation_problems: int = _field(4, "Held-out problems per validation.", lower_bound=1,
                                    flag_default=None)
  estimator: str = _field("pes", "The estimator (set by --trainer).", flag=False,
                          choices=estimators.ESTIMATORS)
  min_horizon: int = _field(100, "PES / ES: shortest trajectory (inner steps); lengths are "
                            "log-uniform in [min_horizon, max_horizon].", lower_bound=1)
  max_horizon: int = _field(2000, "PES / ES: longest trajectory (inner steps).", lower_bound=1)
  num_pairs: int = _field(8, "PES / ES: antithetic particle pairs per meta-step (split over the "
                          "replicas: a multiple of their number).", lower_bound=1)
  sigma: float = _field(0.01, "PES / ES: standard deviation of the perturbations of the "
                        "meta-parameters.", number="positive")
  validation_horizon: Optional[int] = _field(None, "PES / ES: inner steps of a validation run "
                                             "(default: --max_horizon).", lower_bound=1)
  meta_loss_data: str = _field(
      "train", "PES / ES: the data the meta-loss is measured on: 'train' (the minibatches the "
      "optimizer trains on: it learns to lower the training loss) or 'held_out' (minibatches of "
      "examples the problem never trains on, at the same steps: it learns to lower the held-out "
      "loss, i.e. to generalise) or 'both' (the mean of the two meta-losses: fast fitting and "
      "generalisation together). Validation measures the same loss.",
      choices=estimators.META_LOSS_DATA)
  vectorized: bool = _field(True, "PES / ES: run the particles as one vectorised computation "
                            "(False: a loop over them inside the graph; same numbers up to "
                            "rounding, slower).")

  def validate(self):
    """Raises ValueError naming the first bad field, with the allowed values."""
    super().validate()
    if self.min_horizon > self.max_horizon:
      raise ValueError(f"`min_horizon` must be at most `max_horizon`. Received: min_horizon="
                       f"{self.min_horizon}, max_horizon={self.max_horizon}")


def trajectory_length(config: PESConfig, index: int, first: bool) -> int:
  """The inner steps of trajectory `index`: log-uniform, whole truncations; cut if `first`."""
  rng = np.random.default_rng([config.seed, _LENGTH_SEED, int(index)])
  k = config.unroll_length
  drawn = math.exp(rng.uniform(math.log(config.min_horizon), math.log(config.max_horizon)))
  truncations = max(1, min(math.ceil(drawn / k), math.ceil(config.max_horizon / k)))
  if first:  # staggered: the run starts somewhere inside its first trajectory
    truncations = int(rng.integers(1, truncations + 1))
  return truncations * k


class PESTrainer(loop.MetaTrainer):
  """PES / truncated-ES meta-trainer of a rule on a problem family.

  Args:
    rule: a `keras_l2o.rules.Rule` (or name) with meta-parameters.
    family: a `keras_l2o.problems.ProblemFamily`, or a mixture of K families
      (`family.components`; `config.num_pairs` a multiple of K, one replica).
    config: a `PESConfig`.
    save_dir, initial_meta_params, extra_config, strategy: as for
      `trainers.bptt.BPTTTrainer`.

  Example:

  >>> import tempfile, keras_l2o
  >>> from keras_l2o import problems
  >>> from trainers import pes
  >>> trainer = pes.PESTrainer(
  ...     "learned_lr", problems.get("quadratic", num_quadratics=4),
  ...     pes.PESConfig(num_steps=3, unroll_length=5, min_horizon=10, max_horizon=20,
  ...                   num_pairs=2, validation_every=3, validation_problems=2),
  ...     save_dir=tempfile.mkdtemp())
  >>> trainer.run()["steps"]
  3
  """

  section = "pes"

  def __init__(self, rule, family, config: PESConfig, save_dir: str, initial_meta_params=None,
               extra_config: Optional[dict] = None, strategy=None):
    self._init_run(rule, family, config, save_dir, strategy, extra_config)
    initial = base.initial_meta_params(self.rule, config.seed, initial_meta_params)
    self.components = list(getattr(family, "components", [family]))
    k = len(self.components)
    if k > 1 and (config.num_pairs % k or self.num_replicas > 1):
      raise ValueError(f"A mixture of {k} problem families needs `num_pairs` a multiple of {k} "
                       f"and one replica. Received: num_pairs={config.num_pairs}, "
                       f"replicas={self.num_replicas}")
    if config.num_pairs % self.num_replicas:
      raise ValueError(f"`num_pairs` must be a multiple of the number of replicas "
                       f"({self.num_replicas}). Received: num_pairs={config.num_pairs}")
    no_heldout = [c.name for c in self.components if not c.has_heldout_data]
    if config.meta_loss_data != "train" and no_heldout:
      raise ValueError(f"`meta_loss_data={config.meta_loss_data!r}` needs problems with held-out "
                       f"examples; these have none: {no_heldout}. Received: problem {family.name!r}")
    self._init_meta(initial, self._make_meta_optimizer)
    self.global_step = self.step_counter
    self._state_types = []
    self.banks = [self._make_bank(j, config.num_pairs // k, initial) for j in range(k)]
    # Per bank, the next trajectory of its component (trajectory j of bank b is problem
    # j * K + b of the family, so a single family counts 0, 1, 2, ...).
    self.next_trajectory = tf.Variable([config.num_pairs // k] * k, dtype=tf.int64,
                                       trainable=False)
    self._init_checkpoint(meta_optimizer=self.meta_optimizer,
                          pairs=self.banks[0] if k == 1 else self.banks,
                          next_trajectory=self.next_trajectory)
    self._step_fn = tf.function(self._meta_gradient)
    self._apply_fn = tf.function(lambda grads: self.meta_optimizer.apply(grads, self._flat_meta))
    self._write_fn = tf.function(self._write_state)
    self._reset_fns, self._validate_fns = {}, {}
    self._timer, self._timed = time.perf_counter(), 0

  @property
  def name(self) -> str:
    return self.config.estimator

  def _make_meta_optimizer(self):
    return base.meta_adam(self.config, self._flat_meta)

  def _make_bank(self, b, n, initial):
    """The carried state of `n` pairs on problems of component `b`."""
    k, component = len(self.components), self.components[b]
    prefix = f"bank{b}_" if k > 1 else ""
    problem = component.sample("train", 0).tensors
    tensors = estimators.tile(tf.nest.map_structure(lambda t: t[None], problem), n)
    particles = estimators.init_particles(self.rule, component, estimators.tile(tensors, 2))
    as_pairs = lambda t: tf.reshape(t, [2, n, *t.shape[1:]])  # pylint: disable=unnecessary-lambda-assignment
    variables = lambda value, name: base.variables_like(value, prefix + name)  # pylint: disable=unnecessary-lambda-assignment
    bank = {
        "tensors": variables(tensors, "problem"),
        "params": variables([as_pairs(p) for p in particles.params], "params"),
        "rule_state": variables([tuple(as_pairs(t) for t in s) for s in particles.rule_state],
                                "rule_state"),
        "init_loss": tf.Variable(tf.zeros([2, n]), trainable=False, name=prefix + "init_loss"),
        "step": tf.Variable(tf.zeros([n], tf.int64), trainable=False, name=prefix + "step"),
        "xi": variables(tf.nest.map_structure(lambda t: tf.zeros([n, *t.shape], t.dtype),
                                              initial), "xi"),
        "length": tf.Variable(tf.zeros([n], tf.int64), trainable=False, name=prefix + "length"),
        "trajectory": tf.Variable(tf.range(n, dtype=tf.int64) * k + b, trainable=False,
                                  name=prefix + "index"),
    }
    self._state_types.append([type(s) for s in particles.rule_state])
    return bank

  # ---------------------------------------------------------- meta-step --
  def _pairs_step(self, b, eps, xi, tensors, params, rule_state, init_loss, step):
    """One truncation of bank `b`'s pairs given (leaves [n, ...] / [2, n, ...]), on this replica."""
    n = int(step.shape[0])
    flat = lambda t: tf.reshape(t, [2 * n, *t.shape[2:]])  # pylint: disable=unnecessary-lambda-assignment
    particles = estimators.Particles(
        [flat(p) for p in params],
        [t(*[flat(v) for v in s]) for t, s in zip(self._state_types[b], rule_state)],
        tf.concat([step, step], 0), flat(init_loss))
    theta = tf.nest.map_structure(tf.convert_to_tensor, self.meta_vars)
    out = estimators.truncation_estimate(
        self.rule, self.components[b], theta, eps, xi, tensors, particles,
        self.config.unroll_length, self.config.sigma, self.config.estimator,
        self.config.learning_rate, self.config.meta_objective, self.config.vectorized,
        self.config.meta_loss_data)
    pairs = lambda t: tf.reshape(t, [2, n, *t.shape[1:]])  # pylint: disable=unnecessary-lambda-assignment
    new = out["particles"]
    return out["grad_sum"], {
        "xi": out["xi"], "params": [pairs(p) for p in new.params],
        "rule_state": [tuple(pairs(v) for v in s) for s in new.rule_state],
        "init_loss": pairs(new.init_loss), "step": new.step[:n], "values": pairs(out["values"]),
        "mean_losses": pairs(out["mean_losses"]),
        "finite": tf.cast(out["finite"], tf.int32)}  # (gather takes no bool)

  def _bank_inputs(self, b, eps):
    """Bank `b`'s inputs to `_pairs_step`: its pairs are pairs b, b + K, ... of the meta-step."""
    v, k = self.banks[b], len(self.banks)
    return tf.nest.map_structure(tf.convert_to_tensor, (
        tf.nest.map_structure(lambda e: e[b::k], eps) if k > 1 else eps,
        v["xi"], v["tensors"], v["params"], v["rule_state"], v["init_loss"], v["step"]))

  def _meta_gradient(self):
    """The mean estimate over all pairs and every bank's new state (traced)."""
    eps = estimators.sample_perturbations(self.meta_vars, self.config.num_pairs,
                                          self.config.sigma, self.config.seed, self.global_step)
    if self.num_replicas == 1:
      grad_sum, outs = None, []
      for b in range(len(self.banks)):
        bank_sum, out = self._pairs_step(b, *self._bank_inputs(b, eps))
        grad_sum = bank_sum if grad_sum is None else tf.nest.map_structure(tf.add, grad_sum,
                                                                           bank_sum)
        outs.append(out)
    else:  # one bank (checked in __init__)
      inputs = self._bank_inputs(0, eps)
      axes = (0, 0, 0, 1, 1, 1, 0)  # the pair axis of each input
      per = self.config.num_pairs // self.num_replicas

      def piece(ctx):
        r = ctx.replica_id_in_sync_group
        return tuple(tf.nest.map_structure(
            lambda t, a=a: t[r * per:(r + 1) * per] if a == 0 else t[:, r * per:(r + 1) * per],
            x) for x, a in zip(inputs, axes))

      values = self.strategy.experimental_distribute_values_from_function(piece)
      grad_sum, out = self.strategy.run(lambda x: self._pairs_step(0, *x), args=(values,))
      grad_sum = tf.nest.map_structure(
          lambda g: self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None), grad_sum)
      outs = [{key: tf.nest.map_structure(
          lambda t, a=_SIGNED.count(key): self.strategy.gather(t, axis=a), value)
               for key, value in out.items()}]
    grads = [g / self.config.num_pairs for g in tf.nest.flatten(grad_sum)]
    return grads, tf.linalg.global_norm(grads), outs

  def _write_state(self, outs):
    for v, out in zip(self.banks, outs):
      for key in ("xi", "params", "rule_state", "init_loss", "step"):
        for var, value in zip(tf.nest.flatten(v[key]), tf.nest.flatten(out[key])):
          var.assign(value)

  def _reset_pair(self, b, i, tensors, length, index):
    """Pair `i` of bank `b` starts trajectory `index` (problem `tensors`) of `length` steps."""
    v = self.banks[b]
    start = estimators.init_particles(self.rule, self.components[b],
                                      tf.nest.map_structure(lambda t: t[None], tensors))
    for var, value in zip(tf.nest.flatten(v["tensors"]), tf.nest.flatten(tensors)):
      var[i].assign(value)
    for var, value in zip(tf.nest.flatten((v["params"], v["rule_state"])),
                          tf.nest.flatten((start.params, [tuple(s) for s in start.rule_state]))):
      var[:, i].assign(tf.concat([value, value], 0))
    for var in tf.nest.flatten(v["xi"]):
      var[i].assign(tf.zeros(var.shape[1:], var.dtype))
    v["init_loss"][:, i].assign(tf.zeros([2]))
    v["step"][i].assign(0)
    v["length"][i].assign(length)
    v["trajectory"][i].assign(index)

  def _start(self, b, i, first=False):
    """Starts the next trajectory of pair `i` of bank `b` (`first`: its initial one)."""
    k = len(self.banks)
    if first:
      index = int(self.banks[b]["trajectory"][i])
    else:  # the bank's next problem of its component: problem `local` of component b
      local = int(self.next_trajectory[b])
      self.next_trajectory[b].assign(local + 1)
      index = local * k + b
    length = trajectory_length(self.config, index, first)
    if b not in self._reset_fns:
      self._reset_fns[b] = tf.function(functools.partial(self._reset_pair, b))
    self._reset_fns[b](tf.constant(i), self.family.sample("train", index).tensors,
                       tf.constant(length, tf.int64), tf.constant(index, tf.int64))

  def _train_step(self):
    """One meta-step; returns its metrics (means over the particles)."""
    grads, norm, outs = self._step_fn()
    norm = float(norm)
    if math.isfinite(norm):
      self._apply_fn(grads)
    else:
      self.nonfinite_skips.assign_add(1)
    self._write_fn(outs)
    for b, (bank, out) in enumerate(zip(self.banks, outs)):
      finite = out["finite"].numpy().astype(bool)
      ended = out["step"].numpy() >= bank["length"].numpy()
      for i in np.flatnonzero(ended | ~finite):
        if not finite[i]:
          self.diverged_trajectories.assign_add(1)
        self._start(b, int(i))
    values = np.concatenate([out["values"].numpy() for out in outs], axis=1)
    losses = np.concatenate([out["mean_losses"].numpy() for out in outs], axis=1)
    return {"meta_loss": float(np.mean(values[np.isfinite(values)])) if np.isfinite(
        values).any() else float("nan"), "train_loss": float(np.nanmean(losses)),
            "meta_grad_norm": norm}

  # ---------------------------------------------------------- validation --
  def _validation_values(self, b, tensors):
    count = int(tf.nest.flatten(tensors)[0].shape[0])
    theta = tf.nest.map_structure(lambda m: tf.stack([tf.convert_to_tensor(m)] * count),
                                  self.meta_vars)
    component = self.components[b]
    particles = estimators.init_particles(self.rule, component, tensors)
    values, _, _ = estimators.run_truncation(
        self.rule, component, theta, tensors, particles,
        self.config.validation_horizon or self.config.max_horizon, self.config.learning_rate,
        "sum", self.config.vectorized, self.config.meta_loss_data)
    return values

  def validate(self) -> float:
    """Mean loss after each update over the validation horizon, on the validation problems
    (on held-out examples if `meta_loss_data` is `"held_out"`, the mean of both if `"both"`)."""
    k, values = len(self.banks), []
    for b in range(k):
      indices = [i for i in range(self.config.validation_problems) if i % k == b]
      if not indices:
        continue
      if b not in self._validate_fns:
        self._validate_fns[b] = tf.function(functools.partial(self._validation_values, b))
      tensors = estimators.stack([self.family.sample("validation", i).tensors for i in indices])
      values.append(self._validate_fns[b](tensors).numpy().ravel())
    value = float(np.mean(np.concatenate(values)))
    return value if math.isfinite(value) else float("inf")

  # ---------------------------------------------------------------- run --
  def start(self):
    for b, bank in enumerate(self.banks):
      for i in range(int(bank["step"].shape[0])):
        self._start(b, i, first=True)
    self._timer, self._timed = time.perf_counter(), 0

  def meta_step(self, step: int) -> dict:
    del step
    metrics = self._train_step()
    self._timed += 1
    return metrics

  def record_extras(self) -> dict:
    """The inner particle-steps per second since the last record."""
    inner_steps = 2 * self.config.num_pairs * self.config.unroll_length
    rate = self._timed * inner_steps / max(time.perf_counter() - self._timer, 1e-9)
    self._timer, self._timed = time.perf_counter(), 0
    logging.info("meta-step %d: %.0f inner particle-steps/s", int(self.step_counter), rate)
    return {"particle_steps_per_second": rate}

  def validation_round(self, step) -> float:
    began = time.perf_counter()
    value = super().validation_round(step)
    self._timer += time.perf_counter() - began  # (the rate counts meta-steps only)
    return value

  def trainer_config(self) -> dict:
    return {"pes": run_directory.config_dict(self.config),
            "strategy": {"class": type(self.strategy).__name__,
                         "num_replicas": self.num_replicas, "num_pairs": self.config.num_pairs}}
