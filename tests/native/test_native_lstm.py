"""The lstm rule's native CPU kernel (keras_l2o/native) against the reference `rule.apply`.

The kernel computes the same step with other rounding (matmul summation order,
its own sigmoid and tanh). These tests bound the difference: one step within
1e-5 of the largest update and state entry, for every supported hidden size,
depth and preprocessing, at sizes that exercise the blocks of four
coordinates and their remainders; tiny cell states keep 1e-6 relative
precision; NaN gradients poison their own coordinate only, as in the reference. The in-place op gives `native_delta`'s values bit
for bit and never overwrites a buffer a reader holds. `LearnedOptimizer` runs
the kernel by default for lstm rules (in place; the functional op in the
replicas of a `MirroredStrategy`; each test checks which ran), falls back to
TensorFlow ops inside XLA and for unsupported configurations, and its `fit`
trajectories track the reference's to the chaos of the lstm rule (see
test_fast_path.py).

On a machine that cannot build the kernel (no g++ or AVX-512) only the
fallback tests run; on one that can, the first test fails if it is not built.
"""

import doctest
from unittest import mock

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step_paths
from keras_l2o import step as step_lib
from keras_l2o.native import build
from keras_l2o.native import library
from keras_l2o.native import lstm_rule as native_lstm

from tests import testing_utils

STEP_TOLERANCE = 1e-5
# 10 fit steps of the chaotic lstm rule (test_fast_path.py measured 1.3e-4 from
# one ulp of the learning rate on the reference path alone).
FIT_TOLERANCE = 1e-3
BUILT = library.available(native_lstm.KERNEL)
skip_reason = None if BUILT else (build.unbuildable_reason() or "the kernel is not built")


def _perturbed_meta_params(rule, seed=1, scale=0.3):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda t: tf.constant(t.numpy() + scale * rng.normal(size=t.shape), tf.float32),
      rule.init_meta_params(0))


def _gradients(size, rng):
  """Magnitudes from 1e-8 to 10 (both sides of the log-sign threshold), with exact zeros."""
  grad = rng.normal(size=size) * 10.0 ** rng.uniform(-8, 1, size=size)
  grad[::17] = 0.0
  return tf.constant(grad, tf.float32)


def _random_state(rule, var, rng):
  return type(rule.init_state(var))(*[tf.constant(rng.normal(size=s.shape), tf.float32)
                                      for s in rule.init_state(var)])


def _relative(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / max(
      float(np.max(np.abs(np.asarray(b)))), 1e-30)


class _CountNativeCalls:
  """Counts the variables whose step the native kernel computes (per trace of update_step).

  `count` adds both forms; `in_place` counts `apply_in_place` alone.
  """

  def __init__(self, test_case):
    self.count = 0
    self.in_place = 0
    for name in ("native_delta", "apply_in_place"):
      patcher = mock.patch.object(native_lstm, name, self._counting(getattr(native_lstm, name),
                                                                  name == "apply_in_place"))
      patcher.start()
      test_case.addCleanup(patcher.stop)

  def _counting(self, original, in_place):
    def counting(*args, **kwargs):
      self.count += 1
      self.in_place += int(in_place)
      return original(*args, **kwargs)
    return counting


class BuildTest(tf.test.TestCase):

  def test_kernel_is_built_where_the_machine_can_build_it(self):
    reason = build.unbuildable_reason()
    if reason:
      self.skipTest(reason)
    self.assertTrue(BUILT, f"{build.library_path(native_lstm.KERNEL)} is missing or stale: "
                    "`make setup` builds it")
    self.assertFalse(build.is_stale(native_lstm.KERNEL))

  def test_docstring_examples_run(self):
    for module in (build, native_lstm):
      failed, attempted = doctest.testmod(module)
      self.assertGreater(attempted, 0, module.__name__)
      self.assertEqual(failed, 0, module.__name__)

  def test_library_name_carries_the_tensorflow_version(self):
    self.assertEqual(build.library_path("lstm_rule").name, f"_lstm_rule_op-tf{tf.__version__}.so")
    with self.assertRaisesRegex(ValueError, r"Unknown native kernel 'conv'\. Known kernels: "
                                r"\['general_direction', 'lstm_cells', 'lstm_rule'\]"):
      build.source_path("conv")


class StepTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    if not BUILT:
      self.skipTest(skip_reason)

  @parameterized.product(
      config=[{}, {"preset": "dm_code"}, {"preprocessing": "none"}, {"hidden_size": 4},
              {"hidden_size": 16}, {"num_layers": 1}, {"num_layers": 3}],
      size=[1, 7, 4099])
  def test_one_step_matches_apply(self, config, size):
    rule = keras_l2o.rules.get("lstm", **config)
    self.assertTrue(native_lstm.supports(rule, tf.float32))
    meta = _perturbed_meta_params(rule)
    rng = np.random.default_rng(size)
    grad = _gradients(size, rng)
    var = tf.zeros([size])
    state = _random_state(rule, var, rng)
    reference, reference_state = step_lib.rule_delta(rule, meta, grad, var, state, 3, 0.5)
    native, native_state = native_lstm.native_delta(rule, meta, grad, var, state, 3, 0.5)
    self.assertEqual(native.shape, reference.shape)
    self.assertGreater(float(np.max(np.abs(reference))), 1e-5)
    self.assertLess(_relative(native, reference), STEP_TOLERANCE)
    for a, b in zip(native_state, reference_state):
      self.assertEqual(a.shape, b.shape)
      self.assertLess(_relative(a, b), STEP_TOLERANCE)
    # Not the reference itself: the kernel rounds differently somewhere.
    self.assertFalse(all(np.array_equal(a, b) for a, b in zip(native_state, reference_state)))

  def test_matrix_variable_and_20_steps_track_apply(self):
    rule = keras_l2o.rules.get("lstm")
    meta = _perturbed_meta_params(rule, scale=0.1)
    rng = np.random.default_rng(0)
    var = tf.zeros([33, 5])
    native_state = reference_state = rule.init_state(var)
    for t in range(1, 21):
      grad = tf.constant(rng.normal(size=(33, 5)) * 1e-2, tf.float32)
      reference, reference_state = step_lib.rule_delta(rule, meta, grad, var, reference_state,
                                                       t, 1.0)
      native, native_state = native_lstm.native_delta(rule, meta, grad, var, native_state, t, 1.0)
      self.assertEqual(native.shape, (33, 5))
      self.assertLess(_relative(native, reference), 20 * STEP_TOLERANCE, f"step {t}")
    for a, b in zip(native_state, reference_state):
      self.assertEqual(a.shape, (33, 5, 20))
      self.assertLess(_relative(a, b), 20 * STEP_TOLERANCE)

  def test_tiny_cell_states_keep_their_relative_precision(self):
    # With every weight zero, all gates see 0: c_new = c / 2, h_new = tanh(c / 2) / 2.
    # For |c| down to 1e-9 the kernel's tanh must stay within 1e-6 relative of
    # TensorFlow's (2 sigmoid(2x) - 1 alone would be off by up to ~10% at 1e-6).
    rule = keras_l2o.rules.get("lstm", init="zeros")
    meta = rule.init_meta_params(0)
    var = tf.zeros([40])
    c = np.geomspace(1e-9, 1e-2, 40) * np.where(np.arange(40) % 2, 1.0, -1.0)
    fields = {f: tf.zeros([40, 20]) for f in rule.init_state(var)._fields}
    fields["c1"] = tf.constant(np.repeat(c[:, None], 20, axis=1), tf.float32)
    state = type(rule.init_state(var))(**fields)
    grad = tf.fill([40], 1e-3)
    _, reference = step_lib.rule_delta(rule, meta, grad, var, state, 1, 1.0)
    _, native = native_lstm.native_delta(rule, meta, grad, var, state, 1, 1.0)
    self.assertGreater(float(np.min(np.abs(reference.h1))), 0.0)
    self.assertAllClose(native.h1, reference.h1, rtol=1e-6, atol=0.0)
    self.assertAllClose(native.c1, reference.c1, rtol=1e-6, atol=0.0)

  def test_nan_gradient_poisons_its_own_coordinate_only(self):
    rule = keras_l2o.rules.get("lstm")
    meta = _perturbed_meta_params(rule)
    rng = np.random.default_rng(1)
    grad = _gradients(9, rng).numpy()
    grad[4] = np.nan
    var = tf.zeros([9])
    state = _random_state(rule, var, rng)
    reference, _ = step_lib.rule_delta(rule, meta, tf.constant(grad), var, state, 1, 1.0)
    native, native_state = native_lstm.native_delta(rule, meta, tf.constant(grad), var, state,
                                                    1, 1.0)
    self.assertAllEqual(np.isnan(native), np.isnan(reference))
    self.assertTrue(np.isnan(native[4]))
    finite = np.arange(9) != 4
    self.assertLess(_relative(tf.boolean_mask(native, finite),
                              tf.boolean_mask(reference, finite)), STEP_TOLERANCE)
    self.assertTrue(np.all(np.isnan(native_state.h1[4])))
    self.assertTrue(np.all(np.isfinite(tf.boolean_mask(native_state.h1, finite))))

  def test_float16_variable_gets_a_float16_delta(self):
    rule = keras_l2o.rules.get("lstm")
    meta = _perturbed_meta_params(rule)
    var = tf.zeros([10], tf.float16)
    self.assertTrue(native_lstm.supports(rule, tf.float16))
    state = rule.init_state(var)
    grad = tf.cast(tf.linspace(-1e-2, 1e-2, 10), tf.float16)
    native, _ = native_lstm.native_delta(rule, meta, grad, var, state, 1, 1.0)
    reference, _ = step_lib.rule_delta(rule, meta, grad, var, state, 1, 1.0)
    self.assertEqual(native.dtype, tf.float16)
    self.assertLess(_relative(native, reference), 1e-3)  # one float16 ulp

  def test_bad_inputs_are_refused_with_what_was_received(self):
    op = library.load(native_lstm.KERNEL)
    kernel, bias = tf.zeros([10, 32]), tf.zeros([32])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"hidden size must be 4, 16 or 20; received 8"):
      op.keras_l2o_lstm_rule_apply(tf.zeros([3]), [tf.zeros([3, 8])] * 2, [kernel], [bias],
                                   tf.zeros([8]), tf.zeros([1]), preprocessing="log_sign",
                                   preprocess_constant=10.0, output_scale=0.1)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"state tensor 1 has shape \[3,4\] and dtype float; expected "
                                r"float32 with 3 x 20 entries"):
      op.keras_l2o_lstm_rule_apply(tf.zeros([3]), [tf.zeros([3, 20]), tf.zeros([3, 4])],
                                   [tf.zeros([22, 80])], [tf.zeros([80])], tf.zeros([20]),
                                   tf.zeros([1]), preprocessing="log_sign",
                                   preprocess_constant=10.0, output_scale=0.1)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"preprocessing must be one of log_sign, log_sign_clamped, none; "
                                r"received: sqrt"):
      op.keras_l2o_lstm_rule_apply(tf.zeros([3]), [tf.zeros([3, 20])] * 2, [tf.zeros([22, 80])],
                                   [tf.zeros([80])], tf.zeros([20]), tf.zeros([1]),
                                   preprocessing="sqrt", preprocess_constant=10.0,
                                   output_scale=0.1)
    rule = keras_l2o.rules.get("lstm", hidden_size=8)
    with self.assertRaisesRegex(ValueError, r"does not compute this step \(rule 'lstm' with "
                                r"config .*'hidden_size': 8"):
      native_lstm.native_delta(rule, rule.init_meta_params(0), tf.zeros([3]), tf.zeros([3]),
                               rule.init_state(tf.zeros([3])), 1, 1.0)


class InPlaceTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    if not BUILT:
      self.skipTest(skip_reason)

  def _setup(self, size=1001):
    rule = keras_l2o.rules.get("lstm")
    meta = _perturbed_meta_params(rule)
    rng = np.random.default_rng(7)
    grad = _gradients(size, rng)
    value = tf.constant(rng.normal(size=size), tf.float32)
    state = _random_state(rule, value, rng)
    return rule, meta, grad, value, state

  def test_in_place_step_is_native_delta_bit_for_bit(self):
    rule, meta, grad, value, state = self._setup()
    variable = tf.Variable(value)
    slots = [tf.Variable(s) for s in state]
    self.assertTrue(native_lstm.supports_in_place(rule, variable))
    delta, new_state = native_lstm.native_delta(rule, meta, grad, value, state, 1, 0.5)
    @tf.function
    def step():
      native_lstm.apply_in_place(rule, meta, grad, variable, slots, 0.5)

    step()
    self.assertAllEqual(variable, value + delta)
    self.assertGreater(float(np.max(np.abs(delta))), 1e-4)
    for slot, expected in zip(slots, new_state):
      self.assertAllEqual(slot, expected)

  def test_a_tensor_read_before_the_step_keeps_its_values(self):
    rule, meta, grad, value, state = self._setup(size=64)
    variable = tf.Variable(value)
    slots = [tf.Variable(s) for s in state]
    held_variable, held_h1 = tf.convert_to_tensor(variable), tf.convert_to_tensor(slots[0])
    native_lstm.apply_in_place(rule, meta, grad, variable, slots, 1.0)
    self.assertAllEqual(held_variable, value)
    self.assertAllEqual(held_h1, state.h1)
    self.assertNotAllEqual(slots[0], state.h1)
    self.assertNotAllEqual(variable, value)

  def test_refuses_what_it_cannot_update(self):
    rule, meta, grad, value, state = self._setup(size=8)
    half = tf.Variable(tf.cast(value, tf.float16))
    self.assertTrue(native_lstm.supports(rule, tf.float16))
    self.assertFalse(native_lstm.supports_in_place(rule, half))
    with self.assertRaisesRegex(ValueError, r"does not update this variable in place \(rule "
                                r"'lstm' .* variable dtype float16"):
      native_lstm.apply_in_place(rule, meta, grad, half, [tf.Variable(s) for s in state], 1.0)
    slots = [tf.Variable(s) for s in state]
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"the variable has shape \[9\] and dtype float; expected float32 "
                                r"with 8 entries \(the gradient's\)"):
      native_lstm.apply_in_place(rule, meta, grad, tf.Variable(tf.zeros([9])), slots, 1.0)


class MirroredTest(tf.test.TestCase):

  def test_native_step_in_mirrored_replicas_on_logical_cpus(self):
    if not BUILT:
      self.skipTest(skip_reason)
    result = testing_utils.mirrored_fit(rule="lstm", jit_rule="auto", hidden=32, samples=256,
                                        epochs=1,
                                        counted="keras_l2o.native.lstm_rule:native_delta")
    self.assertEqual(result["replicas"], 2)
    # In a strategy the functional kernel runs (not the in-place one), for each of the 4
    # variables on each of the 2 replicas, per trace of the step.
    self.assertGreaterEqual(result["calls"], 8)
    self.assertEqual(result["calls"] % 8, 0)
    self.assertEqual(result["replica_diff"], 0.0)
    self.assertLess(max(result["relative"]), FIT_TOLERANCE, result["relative"])


class PathTest(tf.test.TestCase, parameterized.TestCase):

  def test_which_configurations_take_the_native_path(self):
    variable = tf.Variable(tf.zeros([5]))
    lstm = keras_l2o.rules.get("lstm")
    expected = "native" if BUILT else "reference"
    self.assertEqual(step_paths.step_path("auto", lstm, variable), expected)
    self.assertEqual(step_paths.step_path(True, lstm, variable),
                     "native" if BUILT else "xla")
    self.assertEqual(step_paths.step_path(False, lstm, variable), "reference")
    self.assertEqual(step_paths.step_path("auto", keras_l2o.rules.get("lstm", hidden_size=8),
                                          variable), "reference")
    self.assertEqual(step_paths.step_path("auto", keras_l2o.rules.get("lstm", num_layers=0),
                                          variable), "reference")
    self.assertEqual(step_paths.step_path("auto", keras_l2o.rules.get("mlp"), variable),
                     "reference")  # below AUTO_MIN_SIZE
    self.assertFalse(native_lstm.supports(lstm, tf.float64))
    gpu_variable = mock.Mock(dtype=tf.float32, device="/job:localhost/replica:0/task:0/device:GPU:0",
                             shape=tf.TensorShape([5]))
    self.assertNotEqual(step_paths.step_path("auto", lstm, gpu_variable), "native")

  def test_xla_context_takes_a_tensorflow_path(self):
    variable = tf.Variable(tf.zeros([5]))
    lstm = keras_l2o.rules.get("lstm")
    paths = {}

    @tf.function(jit_compile=True)
    def compiled():
      paths["xla"] = step_paths.step_path("auto", lstm, variable)
      return tf.constant(0.0)

    @tf.function
    def traced():
      paths["graph"] = step_paths.step_path("auto", lstm, variable)
      return tf.constant(0.0)

    compiled()
    traced()
    self.assertEqual(paths["xla"], "reference")
    self.assertEqual(paths["graph"], "native" if BUILT else "reference")


class FitTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    if not BUILT:
      self.skipTest(skip_reason)

  def _fit(self, jit_rule, jit_compile=False, steps=10):
    model = testing_utils.digits_mlp(seed=0, hidden=96)
    rule = keras_l2o.rules.get("lstm")
    optimizer = keras_l2o.LearnedOptimizer(
        rule, meta_params=_perturbed_meta_params(rule, scale=0.1), jit_rule=jit_rule)
    losses = testing_utils.compile_and_fit(model, optimizer, epochs=1, num_samples=steps * 16,
                                           batch_size=16, jit_compile=jit_compile)
    self.assertEqual(int(model.optimizer.iterations), steps)
    return testing_utils.weights_of(model), losses

  @parameterized.named_parameters(("graph", False, 4), ("xla_fit", True, 0))
  def test_fit_steps_track_the_reference(self, jit_compile, native_variables):
    initial = testing_utils.weights_of(testing_utils.digits_mlp(seed=0, hidden=96))
    calls = _CountNativeCalls(self)
    native, native_losses = self._fit("auto", jit_compile)
    # `fit` traces the train step twice (the optimizer is built during the first).
    self.assertEqual(calls.count, 2 * native_variables)
    self.assertEqual(calls.in_place, 2 * native_variables)  # float32, no strategy: in place
    calls.count = 0
    reference, reference_losses = self._fit(False)
    self.assertEqual(calls.count, 0)
    self.assertGreater(testing_utils.max_abs_diff(reference, initial), 1e-3)
    relative = [_relative(a, b) for a, b in zip(native, reference)]
    self.assertLess(max(relative), FIT_TOLERANCE, relative)
    self.assertAllClose(native_losses, reference_losses, rtol=1e-4)


if __name__ == "__main__":
  tf.test.main()
