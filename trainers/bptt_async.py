"""Asynchronous BPTT meta-training on a parameter-server cluster.

`AsyncBPTTTrainer` runs on the chief of a `ParameterServerStrategy` cluster.
The meta-parameters and the meta-optimizer's Adam state live on the parameter
servers. Every meta-step (a *round*) the chief's `ClusterCoordinator`
schedules one truncation per trajectory slot (`problems_per_replica` slots
per worker); whichever worker picks a task reads the current meta-parameters,
unrolls its problem, and applies its own clipped meta-gradient with Adam to
the parameter servers — without waiting for the other tasks (Hogwild-style
asynchronous updates, as in Downpour SGD). The chief then stores every slot's
new trajectory state, validates, and checkpoints like `BPTTTrainer`.

Because updates interleave in whatever order the workers finish, two runs
are not bit-identical (unlike `BPTTTrainer` under any synchronous strategy);
a resumed run continues from its last checkpoint.

The meta-optimizer is the library's own `adam` rule (the formula Keras's Adam
uses, verified by tests/optimizer/test_keras_parity.py), applied inside the worker
function: one formula for the optimizer, the unroll and the meta-update.
"""

import functools
import math

import numpy as np
import tensorflow as tf

from keras_l2o import rules as rules_lib
from keras_l2o import step as step_lib
from . import bptt


class MetaAdam(tf.Module):
  """Adam with global-norm clipping whose state is `tf.Variable`s (placed by the strategy).

  Args:
    variables: the meta-parameter variables it updates.
    learning_rate: Adam's learning rate.
    clipnorm: global-norm clip of the gradient, or None.
  """

  def __init__(self, variables, learning_rate: float, clipnorm=None):
    super().__init__(name="meta_adam")
    self._rule = rules_lib.get("adam")
    self._variables = list(variables)
    self.learning_rate = float(learning_rate)
    self.clipnorm = clipnorm
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
    self.slots = [tuple(tf.Variable(value, trainable=False) for value in self._rule.init_state(v))
                  for v in self._variables]

  def apply(self, grads):
    """Applies one Adam step (inside a `tf.function`); returns the new iteration count."""
    if self.clipnorm:
      grads, _ = tf.clip_by_global_norm(grads, self.clipnorm)
    step = self.iterations.assign_add(1)
    state_type = type(self._rule.init_state(self._variables[0]))
    for grad, var, slots in zip(grads, self._variables, self.slots):
      state = state_type(*[tf.convert_to_tensor(s) for s in slots])
      delta, new_state = step_lib.rule_delta(self._rule, {}, grad, tf.convert_to_tensor(var),
                                             state, step, self.learning_rate)
      var.assign_add(delta)
      for slot, value in zip(slots, new_state):
        slot.assign(value)
    return step


class AsyncBPTTTrainer(bptt.BPTTTrainer):
  """`BPTTTrainer` with asynchronous updates scheduled by a `ClusterCoordinator`.

  Args:
    rule, family, config, save_dir, initial_meta_params, extra_config: as for
      `BPTTTrainer`; `config.problems_per_replica` is the number of trajectory
      slots per worker, and `config.num_steps` counts rounds.
    strategy: a `tf.distribute.experimental.ParameterServerStrategy`.

  Raises:
    ValueError: if `strategy` is not a `ParameterServerStrategy`.
  """

  def __init__(self, rule, family, config, save_dir, initial_meta_params=None,
               extra_config=None, strategy=None):
    if not isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
      raise ValueError("AsyncBPTTTrainer needs a ParameterServerStrategy (get_strategy("
                       f"'parameter_server') with TF_CONFIG). Received: {strategy!r}")
    self.coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    super().__init__(rule, family, config, save_dir, initial_meta_params=initial_meta_params,
                     extra_config=extra_config, strategy=strategy)
    self._task_fns = [tf.function(functools.partial(self._task, c)) for c in self.components]

  @property
  def num_workers(self) -> int:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return len(resolver.cluster_spec().as_dict().get("worker", []))

  def _meta_batch_size(self) -> int:
    return self.num_workers * self.config.problems_per_replica

  def _make_meta_optimizer(self):
    return MetaAdam(self._flat_meta, self.config.meta_learning_rate, self.config.meta_clipnorm)

  def _task(self, family, tensors, state):
    """One worker task: a truncation and its own meta-update (skipped if not finite)."""
    objective, grads, norm, mean_loss, new_state = self._meta_step(family, tensors, state)
    finite = tf.math.logical_and(tf.math.is_finite(norm), tf.math.is_finite(objective))
    tf.cond(finite, lambda: self.meta_optimizer.apply(grads),
            lambda: tf.identity(self.meta_optimizer.iterations))
    return objective, mean_loss, norm, finite, new_state

  def _train_step(self):
    remotes = []
    for slot in range(self.meta_batch):
      k = self._slot_component(slot)
      tensors = self._problem("train", int(self.trajectory_index[slot])).tensors
      remotes.append(self.coordinator.schedule(self._task_fns[k],
                                               args=(tensors, self._read_trajectory(slot))))
    self.coordinator.join()
    outputs, objectives, losses, norms = [], [], [], []
    for remote in remotes:
      objective, mean_loss, norm, finite, new_state = remote.fetch()
      if not finite:
        self.nonfinite_skips.assign_add(1)
      objectives.append(float(objective))
      losses.append(float(mean_loss))
      norms.append(float(norm))
      outputs.append((objective, mean_loss, tf.nest.map_structure(tf.convert_to_tensor,
                                                                  new_state)))
    objective = float(np.mean(objectives))
    return (objective if math.isfinite(objective) else float("nan"), float(np.mean(losses)),
            float(np.mean(norms)), outputs)

  name = "bptt_async"

  def trainer_config(self) -> dict:
    config = super().trainer_config()
    config["strategy"]["num_workers"] = self.num_workers
    return config
