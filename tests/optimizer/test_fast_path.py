"""The fast path of `LearnedOptimizer` (fused rule compiled by XLA) against the reference.

The `"xla"` path of `keras_l2o.step_paths` computes the same step as `keras_l2o.step.rule_delta`
with other rounding. These tests bound the difference: one step of the mlp
rule within 1e-6 of the largest update, 100 `model.fit` steps within 1e-6
relative (per weight: max |fast - reference| / max |reference|), with
`jit_compile` off and on, in the replicas of a `MirroredStrategy` over two
logical CPUs, and under mixed precision (1e-3: float16 passes amplify any
rounding-level change, see the test). The lstm rule's blocked form (`jit_rule=True`):
one step within 1e-5, 10 fit steps within 1e-3 (its trajectories are chaotic at the
rounding level, see the test). Each test also checks that the fast
path really ran, so none can pass by comparing the reference with itself.
"""

from unittest import mock

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step_paths
from keras_l2o import step as step_lib
from keras_l2o.native import lstm_rule as native_lstm
from keras_l2o.rules import lstm as lstm_lib

from tests import testing_utils

FIT_STEPS = 100
BATCH_SIZE = 16
RELATIVE_TOLERANCE = 1e-6
MIXED_PRECISION_TOLERANCE = 1e-3
LSTM_TOLERANCE = 1e-3


def _perturbed_meta_params(rule, seed=1, scale=0.3):
  """Meta-parameters away from the initial ones, so every term of the rule counts."""
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda t: tf.constant(t.numpy() + scale * rng.normal(size=t.shape), tf.float32),
      rule.init_meta_params(0))


def _random_state(rule, shape, rng):
  state = rule.init_state(tf.zeros(shape))
  return type(state)(*[tf.constant(np.abs(rng.normal(size=s.shape)) * 1e-3, tf.float32)
                       for s in state])


def _wide_digits_mlp(seed=0, dtype=None):
  """64 -> 96 -> 10: the first kernel (6,144 entries) is above AUTO_MIN_SIZE, the rest below."""
  return testing_utils.digits_mlp(seed=seed, hidden=96, dtype=dtype)


def _relative_differences(weights_a, weights_b):
  return [float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))
          for a, b in zip(weights_a, weights_b)]


class _CountFastCalls:
  """Counts the variables whose step the fast path computes (each trace of update_step)."""

  def __init__(self, test_case):
    self.count = 0
    original = step_paths.FastDelta.__call__

    def counting(delta_self, *args, **kwargs):
      self.count += 1
      return original(delta_self, *args, **kwargs)

    step_paths.FastDelta.__call__ = counting
    test_case.addCleanup(setattr, step_paths.FastDelta, "__call__", original)


class FusedFormTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(1, 2, 7, 300)
  def test_mlp_fused_form_equals_apply(self, step):
    rule = keras_l2o.rules.get("mlp")
    meta = _perturbed_meta_params(rule)
    rng = np.random.default_rng(step)
    grad = tf.constant(rng.normal(size=(50, 40)) * 10.0 ** rng.uniform(-6, 1, (50, 40)),
                       tf.float32)
    var = tf.constant(rng.normal(size=(50, 40)), tf.float32)
    state = _random_state(rule, (50, 40), rng)
    reference, reference_state = rule.apply(meta, grad, var, state, step)
    fused, fused_state = rule.fast_apply(meta, grad, var, state, step)
    scale = float(np.max(np.abs(reference)))
    self.assertGreater(scale, 1e-4)
    self.assertLess(float(np.max(np.abs(fused - reference))) / scale, 1e-6)
    # The accumulators are the same ops in both forms: identical.
    for a, b in zip(fused_state, reference_state):
      self.assertAllEqual(a, b)

  @parameterized.parameters(1, 2)
  def test_lstm_blocks_equal_apply(self, num_layers):
    # Two whole blocks and a remainder of 123 coordinates, in a [n, 1] variable.
    rule = keras_l2o.rules.get("lstm", num_layers=num_layers)
    meta = _perturbed_meta_params(rule, scale=0.1)
    size = 2 * lstm_lib.FAST_BLOCK + 123
    rng = np.random.default_rng(num_layers)
    grad = tf.constant(rng.normal(size=(size, 1)) * 1e-2, tf.float32)
    var = tf.zeros([size, 1])
    state = type(rule.init_state(var))(*[tf.constant(rng.normal(size=s.shape) * 0.1, tf.float32)
                                         for s in rule.init_state(var)])
    reference, reference_state = rule.apply(meta, grad, var, state, 4)
    blocked, blocked_state = rule.fast_apply(meta, grad, var, state, 4)
    scale = float(np.max(np.abs(reference)))
    self.assertGreater(scale, 1e-4)
    self.assertLess(float(np.max(np.abs(blocked - reference))) / scale, 1e-6)
    for a, b in zip(blocked_state, reference_state):
      self.assertEqual(a.shape, (size, 1, 20))
      self.assertAllClose(a, b, rtol=1e-6, atol=1e-7)
    # Compiled by XLA (its own sigmoid and tanh): rounding-level differences.
    compiled, compiled_state = step_paths.get(rule)(meta, grad, var, state, 4, 1.0)
    self.assertLess(float(np.max(np.abs(compiled - reference))) / scale, 1e-5)
    for a, b in zip(compiled_state, reference_state):
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)

  @parameterized.parameters(("mlp", {}), ("lstm", {}), ("lstm", {"preset": "dm_code"}),
                            ("adam", {}))
  def test_compiled_delta_matches_rule_delta(self, name, config):
    rule = keras_l2o.rules.get(name, **config)
    meta = _perturbed_meta_params(rule, scale=0.1) if rule.is_learned else {}
    rng = np.random.default_rng(3)
    grad = tf.constant(rng.normal(size=(6, 7)) * 1e-2, tf.float32)
    var = tf.constant(rng.normal(size=(6, 7)), tf.float32)
    state = rule.init_state(var)
    fast_state, reference_state = state, state
    for t in range(1, 6):
      fast, fast_state = step_paths.get(rule)(meta, grad * t, var, fast_state, t, 0.5)
      reference, reference_state = step_lib.rule_delta(rule, meta, grad * t, var,
                                                       reference_state, t, 0.5)
      self.assertEqual(fast.shape, reference.shape)
      scale = float(np.max(np.abs(reference)))
      self.assertGreater(scale, 1e-6)
      self.assertLess(float(np.max(np.abs(fast - reference))) / scale, 1e-5, f"step {t}")
    for a, b in zip(fast_state, reference_state):
      self.assertEqual(a.shape, b.shape)
      self.assertAllClose(a, b, rtol=1e-5, atol=1e-6)


class ModeTest(tf.test.TestCase):

  def test_which_variables_take_the_fast_path(self):
    mlp, lstm = keras_l2o.rules.get("mlp"), keras_l2o.rules.get("lstm")
    small = tf.zeros([step_paths.AUTO_MIN_SIZE - 1])
    large = tf.zeros([64, step_paths.AUTO_MIN_SIZE // 64])
    self.assertFalse(step_paths.use_fast_path("auto", mlp, small))
    self.assertTrue(step_paths.use_fast_path("auto", mlp, large))
    self.assertFalse(step_paths.use_fast_path("auto", lstm, large))  # only with jit_rule=True
    self.assertFalse(step_paths.use_fast_path("auto", keras_l2o.rules.get("adam"), large))
    self.assertTrue(step_paths.use_fast_path(True, lstm, small))
    self.assertFalse(step_paths.use_fast_path(False, mlp, large))

  def test_compute_shape_is_a_matrix_when_the_size_factors(self):
    self.assertEqual(step_paths.compute_shape(931_225), [965, 965])  # 5^2 193^2
    self.assertEqual(step_paths.compute_shape(1_000_000), [1000, 1000])
    self.assertEqual(step_paths.compute_shape(2 * 1_000_003), [2, 1_000_003])
    self.assertEqual(step_paths.compute_shape(1_000_003), [1_000_003])  # prime
    self.assertEqual(step_paths.compute_shape(None), [-1])

  def test_add_to_var_returns_the_new_value(self):
    rule = keras_l2o.rules.get("mlp")
    rng = np.random.default_rng(5)
    grad = tf.constant(rng.normal(size=(7, 11)), tf.float32)
    var = tf.constant(rng.normal(size=(7, 11)), tf.float32)
    state = rule.init_state(var)
    delta, state_a = step_paths.get(rule)(rule.init_meta_params(0), grad, var, state, 1, 1.0)
    value, state_b = step_paths.get(rule)(rule.init_meta_params(0), grad, var, state, 1, 1.0,
                                          add_to_var=True)
    self.assertAllEqual(value, var + delta)
    self.assertGreater(float(np.max(np.abs(delta))), 1e-4)
    for a, b in zip(state_a, state_b):
      self.assertAllEqual(a, b)

  def test_bad_mode_is_refused_with_the_allowed_values(self):
    with self.assertRaisesRegex(ValueError, r"Argument `jit_rule` must be one of \['auto', "
                                r"True, False\]\. Received: jit_rule='yes'"):
      keras_l2o.LearnedOptimizer("mlp", jit_rule="yes")
    with self.assertRaisesRegex(ValueError, r"Received: jit_rule=1"):
      keras_l2o.LearnedOptimizer("mlp", jit_rule=1)

  def test_mode_survives_get_config(self):
    optimizer = keras_l2o.LearnedOptimizer("mlp", jit_rule=False)
    rebuilt = keras_l2o.LearnedOptimizer.from_config(optimizer.get_config())
    self.assertIs(rebuilt.jit_rule, False)
    self.assertEqual(keras_l2o.LearnedOptimizer("mlp").get_config()["jit_rule"], "auto")


class FitTest(tf.test.TestCase, parameterized.TestCase):

  def tearDown(self):
    keras.mixed_precision.set_global_policy("float32")
    super().tearDown()

  def _fit(self, jit_rule, jit_compile=False, dtype=None, rule="mlp", steps=FIT_STEPS):
    model = _wide_digits_mlp(seed=0, dtype=dtype)
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_perturbed_meta_params(
        keras_l2o.rules.get(rule), scale=0.1), jit_rule=jit_rule)
    testing_utils.compile_and_fit(model, optimizer, epochs=1, num_samples=steps * BATCH_SIZE,
                                  batch_size=BATCH_SIZE, jit_compile=jit_compile)
    self.assertEqual(int(model.optimizer.iterations), steps)
    return testing_utils.weights_of(model)

  @parameterized.named_parameters(("auto", "auto", False, 1), ("all", True, False, 4),
                                  ("auto_xla_fit", "auto", True, 1))
  def test_100_fit_steps_match_the_reference(self, jit_rule, jit_compile, fast_variables):
    initial = testing_utils.weights_of(_wide_digits_mlp(seed=0))
    calls = _CountFastCalls(self)
    fast = self._fit(jit_rule, jit_compile)
    # `fit` traces the train step twice (the optimizer is built during the first).
    self.assertEqual(calls.count, 2 * fast_variables)
    calls.count = 0
    reference = self._fit(False, jit_compile=False)
    self.assertEqual(calls.count, 0)
    self.assertGreater(testing_utils.max_abs_diff(reference, initial), 1e-2)
    relative = _relative_differences(fast, reference)
    self.assertLess(max(relative), RELATIVE_TOLERANCE, relative)

  def test_lstm_fit_steps_match_the_reference(self):
    # The lstm rule steps along signs, so its `fit` trajectories are chaotic at
    # the rounding level: on the reference path alone, learning_rate 1 + 2**-23
    # instead of 1 (one float32 ulp) moves these weights by 1.3e-4 relative
    # after 10 steps and by 0.34 after 100 (measured). The fast path differs by
    # as much (2.0e-4 after 10 steps), so it is compared over 10 steps at 1e-3;
    # a wrong formula would differ by O(1) (one step agrees to 1e-5, above).
    calls = _CountFastCalls(self)
    # Where the native kernel is built it computes lstm steps under jit_rule=True
    # (tests/native/test_native_lstm.py); this test is about the XLA blocked form.
    with mock.patch.object(native_lstm, "supports", return_value=False):
      fast = self._fit(True, rule="lstm", steps=10)
    self.assertEqual(calls.count, 2 * 4)
    reference = self._fit(False, rule="lstm", steps=10)
    relative = _relative_differences(fast, reference)
    self.assertGreater(max(relative), 0.0)  # the paths really differ
    self.assertLess(max(relative), LSTM_TOLERANCE, relative)

  def test_mixed_precision(self):
    keras.mixed_precision.set_global_policy("mixed_float16")
    calls = _CountFastCalls(self)
    fast = self._fit("auto")
    self.assertEqual(calls.count, 2)
    reference = self._fit(False)
    # The float16 forward and backward passes amplify any rounding-level change
    # of the weights: on the reference path alone, learning_rate 1 + 2**-23
    # (one float32 ulp) instead of 1 moves the weights by 1.5e-4 relative after
    # these 100 steps (measured), and the fast path by 1.0e-4. So 1e-3 here; the
    # one-step agreement is checked to 1e-6 above.
    relative = _relative_differences(fast, reference)
    self.assertLess(max(relative), MIXED_PRECISION_TOLERANCE, relative)

  def test_float16_variables_compute_in_float32(self):
    rule = keras_l2o.rules.get("mlp")
    rng = np.random.default_rng(0)
    grad = tf.constant(rng.normal(size=(64, 80)) * 1e-2, tf.float16)
    var = tf.constant(rng.normal(size=(64, 80)), tf.float16)
    state = rule.init_state(var)
    self.assertEqual(state[0].dtype, tf.float32)
    fast, fast_state = step_paths.get(rule)(rule.init_meta_params(0), grad, var, state, 1, 1.0)
    reference, _ = step_lib.rule_delta(rule, rule.init_meta_params(0), grad, var, state, 1, 1.0)
    self.assertEqual(fast.dtype, tf.float16)
    self.assertEqual(fast_state[0].dtype, tf.float32)
    # Step 1 of the initial rule is -1e-3 sign(g): the same float16 value on both paths.
    self.assertAllEqual(fast, reference)
    self.assertAllClose(fast, -1e-3 * np.sign(grad.numpy()), rtol=5e-3)  # epsilon, rounding


# Runs in a fresh process: the CPU must be split before TensorFlow runs any op.
class MirroredTest(tf.test.TestCase):

  def test_fast_path_in_mirrored_replicas_on_logical_cpus(self):
    result = testing_utils.mirrored_fit(rule="mlp", jit_rule=True, hidden=96, samples=512,
                                        epochs=2, counted="keras_l2o.step_paths:FastDelta.__call__")
    self.assertEqual(result["replicas"], 2)
    # Every one of the 4 variables on each of the 2 replicas (per trace of the step).
    self.assertGreaterEqual(result["calls"], 8)
    self.assertEqual(result["calls"] % 8, 0)
    self.assertEqual(result["replica_diff"], 0.0)
    self.assertLess(max(result["relative"]), RELATIVE_TOLERANCE, result["relative"])


if __name__ == "__main__":
  tf.test.main()
