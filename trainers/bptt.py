"""Meta-training by truncated backpropagation through unrolls (Andrychowicz et al. 2016).

Each meta-step continues the current trajectory by `unroll_length` optimizer
steps (`keras_l2o.unroll`), takes the meta-loss

    L(phi) = sum_t w_t f(theta_t)          (or the log-ratio form, see below)

over the updates of that truncation, and applies its gradient with respect to
the meta-parameters phi with Adam (global-norm clipped). After `horizon` steps
the trajectory ends and a fresh training problem starts. Non-finite
meta-gradients are skipped and counted; a diverged trajectory is restarted on
a fresh problem. Every `validation_every` meta-steps the meta-parameters are
evaluated on held-out validation problems over the full horizon and the best
are kept (optionally stopping early after `patience` rounds without
improvement).

All randomness derives from the seeds, and the whole training state
(meta-parameters, Adam's slots, the current trajectory, counters, best values)
is checkpointed, so a run killed at any moment and resumed ends with the same
meta-parameters as an uninterrupted run.
"""

import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_l2o import run_directory
from keras_l2o import unroll as unroll_lib
from keras_l2o.native import lstm_cells as native_lstm_cells
from . import base
from . import bptt_objective
from . import bptt_slots
from . import checkpointing
from . import loop
from . import truncation_config

_field = base.config_field
META_OBJECTIVES = bptt_objective.META_OBJECTIVES
TIME_WEIGHTS = bptt_objective.TIME_WEIGHTS
time_weights = bptt_objective.time_weights
meta_loss = bptt_objective.meta_loss


@dataclasses.dataclass
class BPTTConfig(truncation_config.TruncationConfig):
  """Configuration of `BPTTTrainer` (defaults follow Andrychowicz et al.).

  The fields shared with PES / ES are `trainers.truncation_config.TruncationConfig`'s.
  """
  horizon: int = _field(100, "Optimizer steps per problem (a multiple of --unroll_length; "
                        "default: the problem's horizon).", lower_bound=1, flag_default=None)
  second_derivatives: bool = _field(False, "Keep second derivatives (exact meta-gradient).")
  time_weights: str = _field("uniform", "Weights of the losses in a truncation.",
                             choices=TIME_WEIGHTS)
  problems_per_replica: int = _field(1, "Trajectories each replica unrolls per meta-step; the "
                                     "meta-batch is replicas x this.", lower_bound=1)
  # Differentiate the rule through native CPU kernels where one exists (the
  # lstm rule's layers: keras_l2o.native.lstm_cells), else through TensorFlow
  # ops. The same function up to float rounding, ~1.4x the inner steps per
  # second on the quadratic setup (docs/PERFORMANCE.md); False reproduces
  # earlier runs bit for bit. Validation unrolls use them too.
  native_kernels: bool = _field(
      True, "BPTT: differentiate the rule through native CPU kernels where one exists (the lstm "
      "rule), ~1.4x the inner steps per second, equal up to float rounding; --nonative_kernels "
      "reproduces runs made before them bit for bit (a resumed run keeps what it started with).")

  def validate(self):
    """Raises ValueError naming the first bad field, with the allowed values."""
    super().validate()
    if self.horizon % self.unroll_length:
      raise ValueError(f"`horizon` must be a multiple of `unroll_length`. Received: horizon="
                       f"{self.horizon}, unroll_length={self.unroll_length}")


class BPTTTrainer(bptt_slots.TrajectorySlots, loop.MetaTrainer):
  """Truncated-BPTT meta-trainer of a rule on a problem family.

  Args:
    rule: a `keras_l2o.rules.Rule` (or name).
    family: a `keras_l2o.problems.ProblemFamily`; a `MixtureFamily` trains one
      rule across its components (trajectories cycle through them).
    config: a `BPTTConfig`.
    save_dir: run directory (see `keras_l2o.run_directory`); created if missing.
    initial_meta_params: starting meta-parameters (default:
      `rule.init_meta_params(config.seed)`).
    extra_config: more JSON-serialisable entries for `config.json`
      (e.g. the problem's registry name and config, the script's flags).
    strategy: a `tf.distribute.Strategy` (default: the current one).

  Example:

  >>> import tempfile, keras_l2o
  >>> from keras_l2o import problems
  >>> from trainers import bptt
  >>> trainer = bptt.BPTTTrainer(
  ...     keras_l2o.rules.get("lstm", hidden_size=4, num_layers=1),
  ...     problems.get("quadratic", num_quadratics=8),
  ...     bptt.BPTTConfig(num_steps=4, unroll_length=5, horizon=10, validation_every=2,
  ...                     validation_problems=2, checkpoint_every=2),
  ...     save_dir=tempfile.mkdtemp())
  >>> result = trainer.run()
  >>> result["steps"]
  4
  """

  name = section = "bptt"

  def __init__(self, rule, family, config: BPTTConfig, save_dir: str, initial_meta_params=None,
               extra_config: Optional[dict] = None, strategy=None):
    self._init_run(rule, family, config, save_dir, strategy, extra_config)
    initial = base.initial_meta_params(self.rule, config.seed, initial_meta_params)
    # The rule the unrolls (meta-gradient and validation) run: with native kernels where possible.
    self.unroll_rule = (native_lstm_cells.for_meta_training(self.rule) if config.native_kernels
                        else self.rule)
    # The meta-batch: every meta-step averages the meta-gradients of this many
    # trajectories, `problems_per_replica` on each replica.
    self.meta_batch = self._meta_batch_size()
    # One trajectory store per component family (a MixtureFamily has several,
    # with different parameter shapes); a plain family is its own only component.
    self.components = list(getattr(family, "components", [family]))
    if self.num_replicas > 1 and len(self.components) > 1:
      raise ValueError(f"A mixture of {len(self.components)} problem families cannot be "
                       f"meta-trained over {self.num_replicas} replicas (their parameter shapes "
                       "differ between replicas). Use one family per run under a strategy, or "
                       "raise problems_per_replica on one device.")
    self._init_meta(initial, self._make_meta_optimizer)
    self.global_step = self.step_counter
    self._init_slots()
    self._init_checkpoint(
        meta_optimizer=self.meta_optimizer, trajectory=self.trajectory_vars,
        trajectory_step=self.trajectory_step, trajectory_index=self.trajectory_index,
        next_trajectory=self.next_trajectory)
    self._weights = time_weights(config.time_weights, config.unroll_length)
    self._meta_step_fns = [tf.function(functools.partial(self._meta_step, c))
                           for c in self.components]
    self._validate_fns = {}
    self._batch_step_fns = {}
    self._apply_meta_gradient_fn = None

  def _meta_batch_size(self) -> int:
    """Trajectories per meta-step: replicas x problems per replica."""
    return self.num_replicas * self.config.problems_per_replica

  def _make_meta_optimizer(self):
    """Keras Adam over the meta-parameters (created in the strategy's scope)."""
    return base.meta_adam(self.config, self._flat_meta)

  # ---------------------------------------------------------- meta-step --
  def _meta_step(self, family, tensors, state):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(self._flat_meta)  # the meta variables are non-trainable: watch them
      losses, final_loss, new_state = unroll_lib.unroll(
          self.unroll_rule, self.meta_vars, family, tensors, state, self.config.unroll_length,
          learning_rate=self.config.learning_rate,
          second_derivatives=self.config.second_derivatives)
      objective = meta_loss(losses, final_loss, self._weights, self.config.meta_objective)
    grads = tape.gradient(objective, self._flat_meta)
    grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, self._flat_meta)]
    norm = tf.linalg.global_norm(grads)
    return objective, grads, norm, tf.reduce_mean(losses), new_state

  def _replica_step(self, components, inputs):
    """The slots of one replica: summed meta-gradients, per-slot results."""
    grad_sum, outputs = None, []
    for k, (tensors, state) in zip(components, inputs):
      objective, grads, _, mean_loss, new_state = self._meta_step_fns[k](tensors, state)
      grad_sum = grads if grad_sum is None else [a + b for a, b in zip(grad_sum, grads)]
      outputs.append((objective, mean_loss, new_state))
    return grad_sum, outputs

  def _batch_step(self, components, inputs):
    """One meta-batch over all replicas: mean meta-gradient, every slot's results.

    Runs inside `tf.function`. Each replica unrolls its own problems; the
    meta-gradients are summed across replicas and divided by the meta-batch,
    and every slot's new trajectory state is gathered to every worker, so all
    workers hold the same training state.
    """
    per_replica = self.config.problems_per_replica
    if self.num_replicas == 1:
      grad_sum, outputs = self.strategy.run(self._replica_step, args=(components, inputs))
      grad_sum = self.strategy.experimental_local_results(grad_sum)[0]
      outputs = self.strategy.experimental_local_results(outputs)[0]
    else:
      values = self.strategy.experimental_distribute_values_from_function(
          lambda ctx: _stack_slots(inputs[ctx.replica_id_in_sync_group * per_replica:
                                          (ctx.replica_id_in_sync_group + 1) * per_replica]))

      def replica_fn(stacked):
        grads, outs = self._replica_step(components[:per_replica],
                                         _unstack_slots(stacked, per_replica))
        return grads, _stack_slots(outs)

      grad_sum, stacked = self.strategy.run(replica_fn, args=(values,))
      grad_sum = [self.strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None)
                  for g in grad_sum]  # leaf by leaf: a list would be packed into one tensor
      # (Strategy.gather of a whole nest returns only the first replica's
      # values in TF 2.21; gathering leaf by leaf is right.)
      stacked = tf.nest.map_structure(lambda value: self.strategy.gather(value, axis=0), stacked)
      outputs = _unstack_slots(stacked, self.meta_batch)
    grads = [g / self.meta_batch for g in grad_sum]
    return grads, tf.linalg.global_norm(grads), outputs

  def meta_gradient(self):
    """The mean meta-gradient of the current meta-batch, without applying it.

    Returns:
      `(grads, norm, outputs)`: the meta-gradients (one per meta-parameter,
      averaged over the `meta_batch` trajectories), their global norm, and
      per slot `(meta_loss, mean_loss, new_trajectory_state)`.
    """
    components = tuple(self._slot_component(j) for j in range(self.meta_batch))
    if components not in self._batch_step_fns:
      self._batch_step_fns[components] = tf.function(functools.partial(self._batch_step,
                                                                       components))
    inputs = [(self._problem("train", int(self.trajectory_index[j])).tensors,
               self._read_trajectory(j)) for j in range(self.meta_batch)]
    return self._batch_step_fns[components](inputs)

  def _train_step(self):
    """One meta-step: the mean meta-gradient of the meta-batch, applied with Adam.

    Returns:
      `(meta_loss, train_loss, meta_grad_norm, outputs)`: means over the
      meta-batch, and per slot `(meta_loss, mean_loss, new_trajectory_state)`.
    """
    grads, norm, outputs = self.meta_gradient()
    objective = float(np.mean([float(o[0]) for o in outputs]))
    mean_loss = float(np.mean([float(o[1]) for o in outputs]))
    norm = float(norm)
    if math.isfinite(norm) and math.isfinite(objective):
      self._apply_meta_gradient(grads)
    else:
      self.nonfinite_skips.assign_add(1)
    return objective, mean_loss, norm, outputs

  def _apply_meta_gradient(self, grads):
    """`meta_optimizer.apply(grads)` traced once into a graph.

    The same ops as the eager call (the meta-parameters are bit-identical), but
    about 1 ms instead of 10 per meta-step (docs/PERFORMANCE.md).
    """
    if self._apply_meta_gradient_fn is None:
      self._apply_meta_gradient_fn = tf.function(
          lambda grads: self.meta_optimizer.apply(grads, self._flat_meta))
    self._apply_meta_gradient_fn(grads)

  def _evaluate_problem(self, family, tensors, state):
    losses, final_loss, _ = unroll_lib.unroll(self.unroll_rule, self.meta_vars, family, tensors,
                                              state, self.config.horizon,
                                              learning_rate=self.config.learning_rate)
    return tf.reduce_mean(unroll_lib.losses_after_updates(losses, final_loss))

  def _evaluate_problems(self, components, inputs):
    return [self._evaluate_problem(self.components[k], tensors, state)
            for k, (tensors, state) in zip(components, inputs)]

  def validate(self) -> float:
    """Mean loss over the horizon (after each update) on the validation problems.

    All problems are unrolled in one traced call: the unrolls are independent,
    so TensorFlow runs them side by side on its inter-op threads (the same ops
    as one call per problem, so the same values).
    """
    indices = range(self.config.validation_problems)
    components = tuple(self._component(index) for index in indices)
    if components not in self._validate_fns:
      self._validate_fns[components] = tf.function(
          functools.partial(self._evaluate_problems, components))
    inputs = []
    for index, k in zip(indices, components):
      problem = self._problem("validation", index)
      inputs.append((problem.tensors,
                     unroll_lib.init_state(self.rule, self.components[k], problem.tensors)))
    values = [float(v) for v in self._validate_fns[components](inputs)]
    value = float(np.mean(values))
    return value if math.isfinite(value) else float("inf")

  # ---------------------------------------------------------------- run --
  def restore(self) -> bool:
    """Restores the newest readable checkpoint, if any; refuses one of another meta-batch."""
    if not checkpointing.candidates(self.manager.directory):
      return False
    saved = (run_directory.read_config(self.save_dir).get("strategy", {})
             if run_directory.has_config(self.save_dir) else {})
    if saved.get("meta_batch", self.meta_batch) != self.meta_batch:
      raise ValueError(
          f"The run in {self.save_dir} meta-trains {saved['meta_batch']} trajectories per "
          f"meta-step ({saved['num_replicas']} replicas); this trainer has {self.meta_batch} "
          f"({self.num_replicas} replicas x {self.config.problems_per_replica} problems per "
          "replica). Resume with the same strategy and problems_per_replica.")
    return super().restore()

  def start(self):
    for slot in range(self.meta_batch):
      self._start_trajectory(slot)

  def meta_step(self, step: int) -> dict:
    """One meta-step; a slot whose trajectory ended or diverged starts the next problem."""
    del step
    objective, mean_loss, norm, outputs = self._train_step()
    for slot, (_, _, new_state) in enumerate(outputs):
      finished = int(new_state.step) >= self.config.horizon
      diverged = not all(np.all(np.isfinite(p.numpy())) for p in new_state.params)
      if diverged:
        self.diverged_trajectories.assign_add(1)
      if finished or diverged:
        self.trajectory_index[slot].assign(self.next_trajectory)
        self.next_trajectory.assign_add(1)
        self._start_trajectory(slot)
      else:
        self._write_trajectory(slot, new_state)
    return {"meta_loss": objective, "train_loss": mean_loss, "meta_grad_norm": norm}

  @property
  def native_kernels_used(self) -> bool:
    """Whether the unrolls run a native kernel (`config.native_kernels` and a rule that has one)."""
    return self.unroll_rule is not self.rule

  def trainer_config(self) -> dict:
    return {"bptt": run_directory.config_dict(self.config),
            "strategy": {"class": type(self.strategy).__name__,
                         "num_replicas": self.num_replicas, "meta_batch": self.meta_batch},
            "native_kernels_used": self.native_kernels_used}


def _stack_slots(slots):
  """Stacks a list of equally structured slot values along a new first axis."""
  return tf.nest.map_structure(lambda *values: tf.stack(values), *slots)


def _unstack_slots(stacked, count):
  """The inverse of `_stack_slots`: a list of `count` slot values."""
  return [tf.nest.map_structure(lambda value, i=i: value[i], stacked) for i in range(count)]
