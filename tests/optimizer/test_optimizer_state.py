"""How `LearnedOptimizer` creates the rules' state variables."""

import collections

import keras
import numpy as np
import tensorflow as tf

import keras_l2o

_SHAPE = (256, 128)


class StateCreationTest(tf.test.TestCase):

  def _traced_step(self, rule):
    variable = keras.Variable(np.ones(_SHAPE, np.float32))
    optimizer = keras_l2o.LearnedOptimizer(rule, learning_rate=1e-3)

    @tf.function
    def step():
      optimizer.apply([tf.fill(_SHAPE, 0.5)], [variable])

    return variable, optimizer, step

  def test_state_built_inside_a_traced_step_starts_at_the_rules_initial_values(self):
    # Keras builds the optimizer while tracing the train step. State filled with one number
    # is created from that scalar, not from a whole array: the array form cost +0.7 GB of
    # peak memory at 10M parameters (measured by scripts/benchmark/, docs/PERFORMANCE.md).
    for rule, initial in (("adam", 0.0), ("adagrad", 0.1), ("mlp_factored", 0.0)):
      variable, optimizer, step = self._traced_step(rule)
      step.get_concrete_function()  # traces, and so builds
      first = optimizer.state_for(variable)[-1 if rule == "adagrad" else 0]
      self.assertAllEqual(first.numpy(), np.full(first.shape, initial, np.float32))
      step()  # and the state it made is the rule's: one step equals the functional step
      state = optimizer.rule.init_state(tf.ones(_SHAPE))
      expected, _ = keras_l2o.step.functional_step(
          optimizer.rule, optimizer.rule.init_meta_params(0), tf.fill(_SHAPE, 0.5),
          tf.ones(_SHAPE), state, 1, 1e-3)
      self.assertAllClose(variable.numpy(), expected.numpy(), rtol=1e-6, atol=0)

  def test_a_state_that_is_not_uniform_keeps_its_values(self):
    class Ramp(keras_l2o.rules.SGD):  # SGD plus an (unused) state holding 0, 1, 2, ...
      state_fields = ("ramp",)

      def init_state(self, var):
        return collections.namedtuple("RampState", ["ramp"])(
            tf.reshape(tf.range(tf.size(var), dtype=tf.float32), tf.shape(var)))

      def apply(self, meta_params, grad, var, state, step):
        return -grad, state

    variable = keras.Variable(np.ones(_SHAPE, np.float32))
    optimizer = keras_l2o.LearnedOptimizer(Ramp(), learning_rate=0.1)

    @tf.function
    def step():
      optimizer.apply([tf.fill(_SHAPE, 0.5)], [variable])

    step()
    self.assertAllEqual(optimizer.state_for(variable).ramp.numpy(),
                        np.arange(np.prod(_SHAPE), dtype=np.float32).reshape(_SHAPE))
    self.assertAllClose(variable.numpy(), np.full(_SHAPE, 0.95, np.float32))


if __name__ == "__main__":
  tf.test.main()
