"""The trajectory slots of a BPTT meta-batch: their variables, problems, reads and writes.

Slot j of the meta-batch carries one training trajectory: the problem's
parameters and the rule's state after `trajectory_step[j]` inner steps on
training problem `trajectory_index[j]`. A mixture family keeps one store per
component in every slot (their parameter shapes differ). `BPTTTrainer` mixes
this in; its meta-steps read a slot, unroll it and write it back.
"""

import numpy as np
import tensorflow as tf

from keras_l2o import unroll as unroll_lib
from . import base


class TrajectorySlots:
  """The `meta_batch` trajectory slots of a BPTT trainer (a mixin of `BPTTTrainer`).

  Needs `rule`, `family`, `components` and `meta_batch` set before `_init_slots`.
  """

  def _init_slots(self):
    """Creates the slots' variables (checkpointed by the trainer) and their caches."""
    self.next_trajectory = tf.Variable(self.meta_batch, dtype=tf.int64, trainable=False)
    # Slot j of the meta-batch runs training problems trajectory_index[j]; a
    # slot whose trajectory ends takes the next unused index (next_trajectory).
    self.trajectory_index = tf.Variable(np.arange(self.meta_batch), dtype=tf.int64,
                                        trainable=False)
    self.trajectory_step = tf.Variable(np.zeros(self.meta_batch), dtype=tf.int64,
                                       trainable=False)
    stores, self._state_types = {}, []
    for k, component in enumerate(self.components):
      problem = component.sample("train", 0)
      start = unroll_lib.init_state(self.rule, component, problem.tensors)
      stores[str(k)] = {"params": start.params,
                        "rule_state": [tuple(s) for s in start.rule_state]}
      self._state_types.append([type(s) for s in start.rule_state])
    self.trajectory_vars = base.variables_like(
        {str(j): stores for j in range(self.meta_batch)}, "trajectory")
    self._problem_cache = {}
    self._trajectory_fns = {}

  def _problem(self, split, index):
    key = (split, int(index))
    if key not in self._problem_cache:
      if len(self._problem_cache) > 64 + 2 * self.meta_batch:
        self._problem_cache.clear()
      self._problem_cache[key] = self.family.sample(split, int(index))
    return self._problem_cache[key]

  def _component(self, index) -> int:
    return self.family.component_of(int(index)) if len(self.components) > 1 else 0

  def _slot_component(self, slot) -> int:
    if len(self.components) == 1:  # (spares a variable read per call)
      return 0
    return self._component(self.trajectory_index[slot])

  def _trajectory_io(self, slot, k):
    """Traced `(read, write)` of slot `slot`'s trajectory variables for component `k`.

    One graph call each instead of an eager op per variable (about 2 ms per
    meta-step on the quadratic setup); the same values.
    """
    key = (slot, k)
    if key not in self._trajectory_fns:
      store = self.trajectory_vars[str(slot)][str(k)]
      targets = tf.nest.flatten(store)

      def read():
        return ([tf.convert_to_tensor(v) for v in store["params"]],
                [[tf.convert_to_tensor(v) for v in s] for s in store["rule_state"]],
                tf.convert_to_tensor(self.trajectory_step[slot]))

      def write(values, step):
        for var, value in zip(targets, values):
          var.assign(value)
        self.trajectory_step[slot].assign(step)

      self._trajectory_fns[key] = (tf.function(read), tf.function(write))
    return self._trajectory_fns[key]

  def _read_trajectory(self, slot):
    k = self._slot_component(slot)
    params, states, step = self._trajectory_io(slot, k)[0]()
    return unroll_lib.UnrollState(
        params, [t(*s) for t, s in zip(self._state_types[k], states)], step)

  def _write_trajectory(self, slot, state):
    k = self._slot_component(slot)
    values = {"params": state.params, "rule_state": [tuple(s) for s in state.rule_state]}
    self._trajectory_io(slot, k)[1](tf.nest.flatten(values), state.step)

  def _start_trajectory(self, slot):
    index = int(self.trajectory_index[slot])
    k = self._component(index)
    problem = self._problem("train", index)
    self._write_trajectory(slot, unroll_lib.init_state(self.rule, self.components[k],
                                                       problem.tensors))
