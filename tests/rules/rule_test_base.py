"""One parameterised test base that every rule inherits.

A rule's test file subclasses `RuleTestBase`, sets `RULE_NAME`, `CONFIG` and a
hand-computed single step, and gets every test below for free: hand step,
golden 5-step trajectory against an independent numpy implementation, the
optimizer and functional paths bit-identical, state size, config round trip,
seeded meta-parameters, extreme gradients, XLA, and meta-gradients.
"""


import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib
from keras_l2o import step as step_lib
from tests.rules import reference_rules

# A small quadratic f(x) = 0.5 sum a x^2 - b.x whose coordinates exercise the
# ordinary range, a gradient far below exp(-10) and an exact zero gradient.
_A = np.array([1.0, 0.5, 2.0, 0.0, 0.0, 1.5])
_B = np.array([0.3, -1.0, 0.7, 1e-6, 0.0, -0.2])
_X0 = np.array([1.0, -2.0, 0.5, 0.1, 0.3, 0.05])


def quadratic_grad(x):
  return _A * x - _B


class RuleTestBase(tf.test.TestCase):
  """Subclasses set the class attributes below."""

  RULE_NAME = None
  CONFIG = {}
  LEARNING_RATE = 0.1
  # (x0, grad, learning_rate, expected x1) computed by hand, or None to skip.
  HAND_STEP = None
  # Relative tolerance of float32 against the float64 numpy reference.
  RTOL32 = 1e-5

  def setUp(self):
    super().setUp()
    if self.RULE_NAME is None:
      self.skipTest("base class")
    self.rule = keras_l2o.rules.get(self.RULE_NAME, **self.CONFIG)

  # ------------------------------------------------------------ helpers --
  def meta_params(self, dtype=np.float32):
    """Initial meta-parameters with a seeded perturbation, so every weight matters."""
    params = meta_params_lib.to_numpy(self.rule.init_meta_params(1))
    rng = np.random.default_rng(7)
    return tf.nest.map_structure(lambda a: (a + 0.1 * rng.normal(size=a.shape)).astype(dtype),
                                 params)

  def reference(self):
    return reference_rules.REFERENCES[self.RULE_NAME](self.rule.get_config())

  def numpy_trajectory(self, meta, steps, lr):
    ref_step, ref_init = self.reference()
    x = _X0.copy()
    state = ref_init(x.shape)
    xs = []
    for t in range(1, steps + 1):
      update, state = ref_step(meta, quadratic_grad(x), state, t)
      x = x + lr * update
      xs.append(x.copy())
    return np.stack(xs)

  def tf_trajectory(self, meta, steps, lr, dtype):
    x = tf.constant(_X0, dtype)
    state = self.rule.init_state(x)
    xs = []
    a, b = tf.constant(_A, dtype), tf.constant(_B, dtype)
    for t in range(1, steps + 1):
      x, state = step_lib.functional_step(self.rule, meta, a * x - b, x, state,
                                          tf.constant(t, tf.int64), lr)
      xs.append(x.numpy())
    return np.stack(xs)

  # -------------------------------------------------------------- tests --
  def test_hand_computed_single_step(self):
    if self.HAND_STEP is None:
      self.skipTest("no hand-computed step for this rule")
    x0, grad, lr, expected = (np.asarray(v, np.float32) for v in self.HAND_STEP)
    x = tf.constant(x0)
    x1, _ = step_lib.functional_step(self.rule, self.rule.init_meta_params(0), tf.constant(grad),
                                     x, self.rule.init_state(x), tf.constant(1, tf.int64), lr)
    self.assertAllClose(expected, x1, rtol=1e-6, atol=1e-7)

  def test_golden_five_step_trajectory_float32(self):
    meta = self.meta_params()
    expected = self.numpy_trajectory(tf.nest.map_structure(np.float64, meta), 5,
                                     self.LEARNING_RATE)
    got = self.tf_trajectory(meta, 5, self.LEARNING_RATE, tf.float32)
    self.assertAllClose(expected, got, rtol=self.RTOL32, atol=1e-6)
    # The trajectory must actually move, or the comparison proves nothing.
    self.assertGreater(np.abs(got[-1] - _X0).max(), 1e-4)

  def test_golden_five_step_trajectory_float64(self):
    meta = self.meta_params(np.float64)
    expected = self.numpy_trajectory(meta, 5, self.LEARNING_RATE)
    got = self.tf_trajectory(meta, 5, self.LEARNING_RATE, tf.float64)
    self.assertAllClose(expected, got, rtol=1e-10, atol=1e-12)

  def test_optimizer_and_functional_paths_identical(self):
    """Keras `update_step` and the functional step give bit-identical parameters.

    On the reference path (`jit_rule=False`), the one documented bit-identical
    to the meta-trainers' unroll; by default the lstm rule takes its native
    kernel (tests/native/test_native_lstm.py bounds that difference).
    """
    meta = self.meta_params()
    rng = np.random.default_rng(0)
    inits = [rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)]
    variables = [tf.Variable(v) for v in inits]
    optimizer = keras_l2o.LearnedOptimizer(self.rule, meta_params=meta, jit_rule=False,
                                           learning_rate=self.LEARNING_RATE)
    values = [tf.constant(v) for v in inits]
    states = [self.rule.init_state(v) for v in values]
    for t in range(1, 11):
      grads = [tf.sin(3.0 * v) + 0.1 * t for v in values]
      var_grads = [tf.sin(3.0 * v) + 0.1 * t for v in variables]
      optimizer.apply(var_grads, variables)
      new = [step_lib.functional_step(self.rule, meta, g, v, s, t, self.LEARNING_RATE)
             for g, v, s in zip(grads, values, states)]
      values, states = [n[0] for n in new], [n[1] for n in new]
    for variable, value in zip(variables, values):
      self.assertAllEqual(variable.numpy(), value.numpy())
    self.assertEqual(int(optimizer.iterations), 10)
    for variable, state in zip(variables, states):
      for slot, expected in zip(optimizer.state_for(variable), state):
        self.assertAllEqual(slot.numpy(), expected.numpy())

  def test_state_floats_per_parameter(self):
    variable = tf.Variable(tf.zeros([7, 3]))
    optimizer = keras_l2o.LearnedOptimizer(self.rule)
    optimizer.build([variable])
    floats = sum(int(np.prod(s.shape)) for s in optimizer.state_for(variable))
    self.assertEqual(floats, 21 * self.rule.state_floats_per_parameter())

  def test_config_round_trip(self):
    config = self.rule.get_config()
    rebuilt = keras_l2o.rules.get(self.RULE_NAME, **config)
    self.assertEqual(rebuilt, self.rule)
    self.assertEqual(keras_l2o.rules.deserialize(keras_l2o.rules.serialize(self.rule)), self.rule)

  def test_meta_params_are_seeded(self):
    first = meta_params_lib.to_numpy(self.rule.init_meta_params(5))
    again = meta_params_lib.to_numpy(self.rule.init_meta_params(5))
    tf.nest.map_structure(self.assertAllEqual, first, again)
    other = meta_params_lib.to_numpy(self.rule.init_meta_params(6))
    leaves = zip(tf.nest.flatten(first), tf.nest.flatten(other))
    if self.rule.get_config().get("init") == "zeros":
      self.assertTrue(all(not a.any() and not b.any() for a, b in leaves))
    elif self.rule.is_learned:
      self.assertTrue(any(not np.array_equal(a, b) for a, b in leaves))
    else:
      self.assertEqual(first, {})

  def test_extreme_gradients_give_finite_updates(self):
    grad = tf.constant([0.0, 1e-30, -1e-30, 1e-8, 1e4, -1e10], tf.float32)
    var = tf.zeros([6])
    state = self.rule.init_state(var)
    for t in range(1, 4):
      update, state = self.rule.apply(self.meta_params(), grad, var, state, t)
      self.assertTrue(np.all(np.isfinite(update.numpy())), msg=f"step {t}: {update.numpy()}")

  def test_xla_matches_eager(self):
    meta = self.meta_params()
    grad = tf.constant(np.linspace(-2, 2, 12).reshape(3, 4), tf.float32)
    var = tf.ones([3, 4])
    state = self.rule.init_state(var)
    eager = self.rule.apply(meta, grad, var, state, tf.constant(3, tf.int64))
    compiled = tf.function(self.rule.apply, jit_compile=True)(meta, grad, var, state,
                                                              tf.constant(3, tf.int64))
    tf.nest.map_structure(lambda a, b: self.assertAllClose(a, b, rtol=1e-5, atol=1e-7), eager,
                          compiled)

  def test_meta_gradient_is_finite_and_nonzero(self):
    if not self.rule.is_learned:
      self.skipTest("hand-designed rule: no meta-parameters")
    meta = tf.nest.map_structure(tf.constant, self.meta_params())
    with tf.GradientTape() as tape:
      tape.watch(tf.nest.flatten(meta))
      x = tf.constant(_X0, tf.float32)
      state = self.rule.init_state(x)
      loss = 0.0
      for t in range(1, 4):
        grad = tf.constant(_A, tf.float32) * x - tf.constant(_B, tf.float32)
        x, state = step_lib.functional_step(self.rule, meta, grad, x, state, t, 1.0)
        loss += tf.reduce_sum(0.5 * _A * x * x - _B * x)
    grads = tape.gradient(loss, meta)
    flat = [g.numpy() for g in tf.nest.flatten(grads)]
    self.assertTrue(all(np.all(np.isfinite(g)) for g in flat))
    self.assertGreater(max(np.abs(g).max() for g in flat), 0.0)
