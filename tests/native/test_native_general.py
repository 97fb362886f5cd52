"""The general rule's native kernel (keras_l2o/native/general_rule.py) against the TF-op `rule.apply`.

The kernel computes a matrix's accumulators, channels and per-coordinate MLP
with other rounding (its sums in another order, reductions in double). These
tests bound the difference for random meta-parameters and random states, on
plain matrices, matrices whose width is not a multiple of 16, conv kernels
(a batch of matrices) and vectors, with and without Newton–Schulz and time
features: the raw direction within 1e-6 and the update within 1e-5 of their
largest entry, the state within 1e-6. `LearnedOptimizer` takes the kernel by
default, falls back to TensorFlow ops when the library is missing, and its
`fit` trajectory tracks the reference's.

On a machine that cannot build the kernel (no g++ or AVX-512) only the
fallback tests run; on one that can, the first test fails if it is not built.
"""

import contextlib
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
from keras_l2o.native import general_rule as native_general
from keras_l2o.native import library
from keras_l2o.rules import general_features as gf

from tests import testing_utils

DIRECTION_TOLERANCE = 1e-6
# Newton–Schulz amplifies the direction's rounding a little (measured up to 3e-6).
UPDATE_TOLERANCE = 1e-5
STATE_TOLERANCE = 1e-6
BUILT = library.available(native_general.KERNEL)
skip_reason = None if BUILT else (build.unbuildable_reason() or "the kernel is not built")
CONFIGS = {"default": {}, "no_ns": {"orthogonalize": False},
           "time_deep": {"num_training_steps": 50, "hidden_sizes": [16, 4, 8]},
           "wide": {"hidden_sizes": [32]}}
# (config, shape): every shape with the default, the others on the shapes that differ most.
CASES = [("default", (7, 5)), ("default", (40, 33)), ("default", (3, 3, 4, 6)),
         ("default", (1, 17)), ("default", (50, 3)), ("no_ns", (40, 33)), ("no_ns", (3, 3, 4, 6)),
         ("time_deep", (2, 5, 20)), ("wide", (16, 16))]


def _random_meta_params(rule, seed):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(lambda t: tf.constant(rng.normal(size=t.shape), tf.float32),
                               rule.init_meta_params(seed))


def _random_state(var, rng):
  """Momenta of any sign; second moments positive over 6 decades, some exactly zero."""
  def positive(shape):
    values = 10.0 ** rng.uniform(-6, 0, size=shape)
    values.reshape(-1)[::11] = 0.0
    return tf.constant(values, tf.float32)
  zeros = gf.init_state(var, tf.float32)
  return gf.GeneralState(tf.constant(rng.normal(size=zeros.momentum.shape), tf.float32),
                         positive(zeros.velocity.shape), positive(zeros.rows.shape),
                         positive(zeros.cols.shape))


def _gradient(shape, rng):
  """Normal entries, a dead row and a dead column (zero gradients), scale 1e-3."""
  grad = 1e-3 * rng.normal(size=shape)
  grad[..., 0, :] = 0.0
  grad[..., :, -1] = 0.0
  return tf.constant(grad, tf.float32)


def _relative(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / max(
      float(np.max(np.abs(np.asarray(b)))), 1e-30)


class BuildTest(tf.test.TestCase):

  def test_kernel_is_built_where_the_machine_can_build_it(self):
    reason = build.unbuildable_reason()
    if reason:
      self.skipTest(reason)
    self.assertTrue(BUILT, f"{build.library_path(native_general.KERNEL)} is missing or stale: "
                    "`make setup` builds it")
    self.assertIn(native_general.KERNEL, build.SOURCES)

  def test_docstring_example_runs(self):
    failed, attempted = doctest.testmod(native_general)
    self.assertGreater(attempted, 0)
    self.assertEqual(failed, 0)


class StepTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    if not BUILT:
      self.skipTest(skip_reason)

  @parameterized.named_parameters(
      (f"{name}_{'x'.join(map(str, shape))}", name, shape) for name, shape in CASES)
  def test_two_steps_match_apply(self, config, shape):
    rule = keras_l2o.rules.get("general", **CONFIGS[config])
    rng = np.random.default_rng(len(shape) + sum(shape))
    meta = _random_meta_params(rule, seed=sum(shape))
    var = tf.constant(rng.normal(size=shape), tf.float32)
    reference_state = native_state = _random_state(var, rng)
    for step in (1, 7):
      grad = _gradient(shape, rng)
      d_ref, _ = rule.direction(meta, grad, var, reference_state, step)
      d_nat, _ = native_general.direction(rule, meta, grad, var, native_state, step)
      self.assertLess(_relative(d_nat, d_ref), DIRECTION_TOLERANCE)
      ref, reference_state = step_lib.rule_delta(rule, meta, grad, var, reference_state, step,
                                                 0.5)
      nat, native_state = native_general.native_delta(rule, meta, grad, var, native_state, step,
                                                      0.5)
      self.assertLess(_relative(nat, ref), UPDATE_TOLERANCE)
      self.assertGreater(float(tf.reduce_max(tf.abs(ref))), 0.0)
      for a, b in zip(native_state, reference_state):
        self.assertEqual(a.shape, b.shape)
        self.assertLess(_relative(a, b), STATE_TOLERANCE)

  def test_vectors_take_the_rules_own_path_bit_for_bit(self):
    rule = keras_l2o.rules.get("general")
    meta = _random_meta_params(rule, 0)
    grad = tf.constant([1e-3, -2.0, 0.0, 5.0])
    state = rule.init_state(grad)
    nat, nat_state = native_general.native_delta(rule, meta, grad, tf.ones([4]), state, 1, 1.0)
    ref, ref_state = step_lib.rule_delta(rule, meta, grad, tf.ones([4]), state, 1, 1.0)
    self.assertAllEqual(nat, ref)
    for a, b in zip(nat_state, ref_state):
      self.assertAllEqual(a, b)

  def test_float16_variable_gets_a_float16_delta(self):
    rule = keras_l2o.rules.get("general")
    rng = np.random.default_rng(0)
    var = tf.constant(rng.normal(size=(9, 20)), tf.float16)
    grad = tf.constant(rng.normal(size=(9, 20)), tf.float16)
    state = rule.init_state(var)
    nat, _ = native_general.native_delta(rule, rule.init_meta_params(0), grad, var, state, 1, 1.0)
    ref, _ = step_lib.rule_delta(rule, rule.init_meta_params(0), grad, var, state, 1, 1.0)
    self.assertEqual(nat.dtype, tf.float16)
    self.assertAllClose(nat, ref, rtol=1e-3, atol=1e-7)

  def test_unsupported_rules_are_refused_with_what_was_received(self):
    rule = keras_l2o.rules.get("general", hidden_sizes=[64])
    self.assertFalse(native_general.supports(rule, tf.float32))
    self.assertFalse(native_general.supports(keras_l2o.rules.get("general"), tf.float64))
    self.assertFalse(native_general.supports(keras_l2o.rules.get("adam"), tf.float32))
    with self.assertRaisesRegex(ValueError, r"does not compute this step \(rule 'general' with "
                                r"config .*'hidden_sizes': \[64\].*variable dtype float32"):
      native_general.native_delta(rule, rule.init_meta_params(0), tf.ones([3, 3]),
                                  tf.ones([3, 3]), rule.init_state(tf.ones([3, 3])), 1, 1.0)


class FallbackTest(tf.test.TestCase):

  def test_missing_library_takes_the_reference_path(self):
    rule = keras_l2o.rules.get("general")
    grad = tf.constant(np.random.default_rng(0).normal(size=(8, 6)), tf.float32)
    results = []
    for jit_rule, missing in (("auto", True), (False, False)):
      variable = keras.Variable(np.ones((8, 6), np.float32))
      optimizer = keras_l2o.LearnedOptimizer(rule, jit_rule=jit_rule)
      with mock.patch.object(library, "load", return_value=None) if missing else (
          contextlib.nullcontext()):
        if missing:
          self.assertFalse(native_general.supports(rule, tf.float32))
          self.assertEqual(step_paths.step_path(jit_rule, rule, variable), "reference")
        optimizer.apply([grad], [variable])
      results.append(variable.numpy())
    self.assertAllEqual(results[0], results[1])  # the reference path, bit for bit
    self.assertGreater(float(np.max(np.abs(results[0] - 1.0))), 1e-4)

  def test_which_configurations_take_the_native_path(self):
    variable = tf.Variable(tf.zeros([8, 8]))
    rule = keras_l2o.rules.get("general")
    self.assertEqual(step_paths.step_path("auto", rule, variable),
                     "native" if BUILT else "reference")
    self.assertEqual(step_paths.step_path(False, rule, variable), "reference")
    self.assertEqual(step_paths.step_path("auto", keras_l2o.rules.get(
        "general", hidden_sizes=[40]), variable), "reference")


class FitTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    if not BUILT:
      self.skipTest(skip_reason)

  def _fit(self, jit_rule, steps=6):
    model = testing_utils.digits_mlp(seed=0, hidden=32)
    rule = keras_l2o.rules.get("general")
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_random_meta_params(rule, 4),
                                           learning_rate=5.0, jit_rule=jit_rule)
    losses = testing_utils.compile_and_fit(model, optimizer, epochs=1, num_samples=steps * 16,
                                           batch_size=16)
    self.assertEqual(int(model.optimizer.iterations), steps)
    return testing_utils.weights_of(model), losses

  def test_fit_steps_track_the_reference(self):
    calls = []
    original = native_general.native_delta
    with mock.patch.object(native_general, "native_delta",
                           lambda *a, **k: calls.append(1) or original(*a, **k)):
      native, native_losses = self._fit("auto")
    self.assertNotEmpty(calls)
    reference, reference_losses = self._fit(False)
    initial = testing_utils.weights_of(testing_utils.digits_mlp(seed=0, hidden=32))
    self.assertGreater(testing_utils.max_abs_diff(reference, initial), 1e-3)
    relative = [_relative(np.asarray(a) - np.asarray(i), np.asarray(b) - np.asarray(i))
                for a, b, i in zip(native, reference, initial)]
    self.assertLess(max(relative), 1e-4, relative)
    self.assertAllClose(native_losses, reference_losses, rtol=1e-5)


if __name__ == "__main__":
  tf.test.main()
