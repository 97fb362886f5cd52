"""Tests of the low-memory `mlp_factored` rule (Adafactor's factored second moment)."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step_paths
from tests.rules import reference_rules
from tests.rules import rule_test_base
from tests import testing_utils


class FactoredMLPRuleTest(rule_test_base.RuleTestBase):
  """The shared rule tests; with min_dim_to_factor=2 the [3, 4] variables there are factored."""
  RULE_NAME = "mlp_factored"
  CONFIG = {"min_dim_to_factor": 2}
  LEARNING_RATE = 10.0
  # Vectors keep the full second moment: at initialisation the step is Adam's.
  HAND_STEP = ([1.0, -2.0], [0.5, 0.25], 1.0, [0.99900000002, -2.00099999996])

  def test_state_floats_per_parameter(self):
    variable = tf.Variable(tf.zeros([7, 3]))
    optimizer = keras_l2o.LearnedOptimizer(self.rule)
    optimizer.build([variable])
    floats = sum(int(np.prod(s.shape)) for s in optimizer.state_for(variable))
    self.assertEqual(self.rule.state_floats_per_parameter(), 2)
    self.assertEqual(floats, 2 * 21 + 7 + 3)  # m and s, then one float per row and column


def _meta(rule, seed=3):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(lambda t: t.numpy() + 0.2 * rng.normal(size=t.shape),
                               rule.init_meta_params(0))


class FactoringTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.rule = keras_l2o.rules.get("mlp_factored")

  def test_which_shapes_are_factored_and_their_state(self):
    self.assertTrue(self.rule.is_factored([512, 256]))
    self.assertTrue(self.rule.is_factored([784, 1]))
    self.assertFalse(keras_l2o.rules.get("mlp_factored", min_dim_to_factor=32).is_factored(
        [512, 16]))  # a side below min_dim_to_factor
    self.assertFalse(self.rule.is_factored([4096]))
    state = self.rule.init_state(tf.zeros([512, 256]))
    self.assertEqual([tuple(s.shape) for s in state], [(512, 256), (512, 256), (512,), (256,)])
    conv = self.rule.init_state(tf.zeros([3, 3, 64, 32]))  # rows and columns of each 64x32 slice
    self.assertEqual([tuple(s.shape) for s in conv[2:]], [(3, 3, 64), (3, 3, 32)])
    floats = sum(int(np.prod(s.shape)) for s in state)
    self.assertAlmostEqual(floats / (512 * 256), 2.0 + (512 + 256) / (512 * 256))

  def test_factored_steps_match_numpy_in_float64(self):
    rng = np.random.default_rng(0)
    meta = _meta(self.rule)
    ref_step, ref_init = reference_rules.REFERENCES["mlp_factored"](self.rule.get_config())
    for shape in ([40, 36], [2, 33, 40]):
      ref_state = ref_init(shape)
      state = self.rule.init_state(tf.zeros(shape, tf.float64))
      for t in range(1, 6):
        g = rng.normal(size=shape) * rng.uniform(0.01, 10.0, size=shape[:-1] + [1])
        expected, ref_state = ref_step(meta, g, ref_state, t)
        got, state = self.rule.apply(meta, tf.constant(g), tf.zeros(shape, tf.float64), state, t)
        self.assertAllClose(expected, got, rtol=1e-10, atol=1e-14)
      self.assertEqual(tuple(state.velocity_rows.shape), tuple(shape[:-1]))

  def test_rank_one_squared_gradients_give_the_mlp_rule_step(self):
    # Factoring is exact when g^2 is an outer product a_i b_j: the steps equal the full mlp's.
    rng = np.random.default_rng(1)
    meta = _meta(self.rule)
    full = keras_l2o.rules.get("mlp")
    shape = [48, 40]
    var = tf.zeros(shape, tf.float64)
    state, full_state = self.rule.init_state(var), full.init_state(var)
    a = rng.uniform(0.1, 3.0, size=(48, 1))
    for t in range(1, 6):
      b = rng.uniform(0.1, 3.0, size=(1, 40))
      g = tf.constant(np.sqrt(a * b) * rng.choice([-1.0, 1.0], size=shape))
      step, state = self.rule.apply(meta, g, var, state, t)
      full_step, full_state = full.apply(meta, g, var, full_state, t)
      self.assertAllClose(full_step, step, rtol=1e-9, atol=1e-15)
    # ...and differs from it when g^2 is far from rank 1.
    g = tf.constant(rng.normal(size=shape) ** 3)
    step, _ = self.rule.apply(meta, g, var, state, 6)
    full_step, _ = full.apply(meta, g, var, full_state, 6)
    self.assertGreater(float(tf.reduce_max(tf.abs(step - full_step))), 1e-5)

  def test_compiled_fast_path_equals_apply_in_the_variable_shape(self):
    rng = np.random.default_rng(2)
    meta = _meta(self.rule)
    self.assertFalse(self.rule.layout_free([64, 96]))
    for shape in ([64, 96], [96, 10], [5000]):
      state = type(self.rule.init_state(tf.zeros(shape)))(
          *[tf.constant(np.abs(rng.normal(size=s.shape)) * 1e-3, tf.float32)
            for s in self.rule.init_state(tf.zeros(shape))])
      grad = tf.constant(rng.normal(size=shape), tf.float32)
      var = tf.constant(rng.normal(size=shape), tf.float32)
      fast, fast_state = step_paths.get(self.rule)(meta, grad, var, state, 4, 1.0)
      reference, ref_state = self.rule.apply(meta, grad, var, state, 4)
      scale = float(tf.reduce_max(tf.abs(reference)))
      self.assertLess(float(tf.reduce_max(tf.abs(fast - reference))), 1e-6 * scale, shape)
      for a, b in zip(fast_state, ref_state):
        self.assertEqual(a.shape, b.shape)
        self.assertAllClose(a, b, rtol=1e-6, atol=1e-6 * float(tf.reduce_max(tf.abs(b))))

  def test_fit_with_fast_path_matches_the_reference_and_trains(self):
    weights = {}
    losses = {}
    for jit_rule in ("auto", False):
      model = testing_utils.digits_mlp(seed=0, hidden=96)  # 64x96 kernel: factored
      optimizer = keras_l2o.LearnedOptimizer(
          "mlp_factored", meta_params=keras_l2o.pretrained.meta_params("l2o-mlp-general"),
          jit_rule=jit_rule)
      losses[jit_rule] = testing_utils.compile_and_fit(model, optimizer, epochs=4, num_samples=512,
                                                       batch_size=32)
      weights[jit_rule] = testing_utils.weights_of(model)
      kernel_state = optimizer.state_for(model.trainable_variables[0])
      self.assertEqual(tuple(kernel_state.velocity_rows.shape), (64,))
    self.assertLess(testing_utils.max_abs_diff(weights["auto"], weights[False]), 1e-5)
    # The shipped mlp meta-parameters run unchanged in the factored rule and train.
    self.assertLess(losses[False][-1], 0.5 * losses[False][0], losses[False])

  def test_save_and_load_keeps_the_factored_state(self):
    model = testing_utils.digits_mlp(seed=0, hidden=40)
    testing_utils.compile_and_fit(model, keras_l2o.LearnedOptimizer("mlp_factored"), epochs=1)
    path = os.path.join(self.get_temp_dir(), "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    self.assertEqual(loaded.optimizer.rule, self.rule)
    for a, b in zip(model.optimizer.state_for(model.trainable_variables[0]),
                    loaded.optimizer.state_for(loaded.trainable_variables[0])):
      self.assertAllEqual(a.numpy(), b.numpy())
    self.assertEqual(tuple(loaded.optimizer.state_for(
        loaded.trainable_variables[0]).velocity_cols.shape), (40,))

  def test_export_warns_that_it_steps_the_unfactored_vector_form(self):
    path = os.path.join(self.get_temp_dir(), "export")
    with self.assertLogs("absl", "WARNING") as logs:
      keras_l2o.pretrained.get("l2o-mlp-factored").export(path)
    self.assertIn("the full second moment instead of the factored one", "\n".join(logs.output))
    exported = tf.saved_model.load(path)
    state = exported.init_state(tf.constant(4))
    self.assertEqual(sorted(state), sorted(self.rule.state_fields))
    self.assertEqual(tuple(state["velocity_rows"].shape), (4,))  # a vector keeps the full v
    grad, var = tf.constant([0.5, -1.0, 2.0, 0.0]), tf.ones([4])
    out = exported.step(grad, var, state, tf.constant(0, tf.int64))
    optimizer = keras_l2o.pretrained.get("l2o-mlp-factored")
    expected, _ = keras_l2o.step.functional_step(
        optimizer.rule, optimizer.meta_params, grad, var, optimizer.rule.init_state(var), 1, 1.0)
    self.assertAllClose(out["var"], expected, rtol=1e-6, atol=1e-9)
    self.assertGreater(float(tf.reduce_max(tf.abs(expected - var))), 1e-4)

  def test_bad_config_is_refused(self):
    with self.assertRaisesRegex(ValueError, "min_dim_to_factor.*Received: min_dim_to_factor=0"):
      keras_l2o.rules.get("mlp_factored", min_dim_to_factor=0)
    with self.assertRaisesRegex(ValueError, "epsilon_1.*Received: epsilon_1=0"):
      keras_l2o.rules.get("mlp_factored", epsilon_1=0.0)
    with self.assertRaisesRegex(ValueError, "unexpected config.*Allowed"):
      keras_l2o.rules.get("mlp_factored", beta_3=0.5)


if __name__ == "__main__":
  tf.test.main()
