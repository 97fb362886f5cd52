"""Tests of the `general` rule: numpy oracle, scale invariance, Newton–Schulz, state, saving."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib
from keras_l2o.rules import newton_schulz
from tests.rules import general_reference
from tests.rules import rule_test_base
from tests import testing_utils


def _perturbed(rule, seed=3, scale=0.3, dtype=np.float64):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(lambda a: (a + scale * rng.normal(size=a.shape)).astype(dtype),
                               meta_params_lib.to_numpy(rule.init_meta_params(0)))


class GeneralRuleTest(rule_test_base.RuleTestBase):
  """The shared rule tests (their 1-D quadratic exercises the Adam-like vector path)."""
  RULE_NAME = "general"
  LEARNING_RATE = 10.0
  # A vector: Adam (beta_2 0.95, bias-corrected) whose first step is step_scale * sign(g).
  HAND_STEP = ([1.0, -2.0], [0.5, 0.25], 1.0, [0.999, -2.001])

  def reference(self):
    def step(meta, g, state, t):
      return general_reference.step(meta, g, None, state, t)
    return step, general_reference.init

  def test_state_floats_per_parameter(self):
    variable = tf.Variable(tf.zeros([7, 3]))
    optimizer = keras_l2o.LearnedOptimizer(self.rule)
    optimizer.build([variable])
    floats = sum(int(np.prod(s.shape)) for s in optimizer.state_for(variable))
    self.assertEqual(self.rule.state_floats_per_parameter(), 4)
    self.assertEqual(floats, 4 * 21 + 3 * 7 + 3 * 3)  # 3 momenta + v; 3 EMAs per row / column
    big = sum(int(np.prod(s.shape)) for s in self.rule.init_state(tf.zeros([512, 256])))
    self.assertLess(big / (512 * 256), 4.03)

  def test_meta_gradient_is_finite_and_nonzero(self):
    # On a matrix: vectors take the hand-designed path, which has no meta-parameters.
    meta = tf.nest.map_structure(tf.constant, self.meta_params())
    a = tf.constant(np.random.default_rng(0).uniform(0.5, 2.0, size=(4, 3)), tf.float32)
    with tf.GradientTape() as tape:
      tape.watch(tf.nest.flatten(meta))
      x = tf.ones([4, 3])
      state = self.rule.init_state(x)
      loss = 0.0
      for t in range(1, 4):
        x, state = keras_l2o.step.functional_step(self.rule, meta, a * x, x, state, t, 100.0)
        loss += tf.reduce_sum(0.5 * a * x * x)
    flat = [g.numpy() for g in tf.nest.flatten(tape.gradient(loss, meta))]
    self.assertTrue(all(np.all(np.isfinite(g)) for g in flat))
    self.assertGreater(min(np.abs(g).max() for g in flat), 0.0)  # every meta-parameter matters


class MatrixPathTest(tf.test.TestCase):

  def test_steps_match_numpy_oracle_in_float64(self):
    rng = np.random.default_rng(0)
    for config in ({}, {"orthogonalize": False}, {"num_training_steps": 40, "hidden_sizes": [6]}):
      rule = keras_l2o.rules.get("general", **config)
      meta = _perturbed(rule)
      for shape in ([6, 9], [9, 6], [3, 3, 4, 5]):
        ref_state = general_reference.init(tuple(shape))
        state = rule.init_state(tf.zeros(shape, tf.float64))
        p = rng.normal(size=shape)
        for t in range(1, 5):
          g = rng.normal(size=shape) * rng.uniform(0.01, 10.0, size=shape[:-1] + [1])
          expected, ref_state = general_reference.step(
              meta, g, p, ref_state, t, **{k: v for k, v in config.items() if k != "hidden_sizes"})
          got, state = rule.apply(meta, tf.constant(g), tf.constant(p), state, t)
          self.assertAllClose(expected, got, rtol=1e-9, atol=1e-15, msg=f"{config} {shape} {t}")
          p = p + 10.0 * expected
        # The RMS of every matrix slice's update is step_scale exactly.
        rms = np.sqrt(np.mean(np.square(got.numpy()), axis=(-2, -1)))
        self.assertAllClose(np.full_like(rms, 1e-3), rms, rtol=1e-9)

  def test_initial_rule_is_muon_and_rms_adam(self):
    """At init: orthogonalised 0.9-momentum (Muon) / normalised m / sqrt(v) (Adam)."""
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=(12, 7)) * rng.uniform(0.1, 3.0, size=(12, 1)) for _ in range(3)]
    for orthogonalize in (True, False):
      rule = keras_l2o.rules.get("general", orthogonalize=orthogonalize)
      meta = rule.init_meta_params(0)
      state = rule.init_state(tf.zeros([12, 7], tf.float64))
      m, v = np.zeros((12, 7)), np.zeros((12, 7))
      for t, g in enumerate(grads, 1):
        update, state = rule.apply(meta, tf.constant(g), tf.zeros([12, 7], tf.float64), state, t)
        m, v = 0.9 * m + 0.1 * g, 0.95 * v + 0.05 * g * g
      if orthogonalize:
        u, _, vt = np.linalg.svd(-m, full_matrices=False)
        self.assertGreater(np.sum(update.numpy() * (u @ vt)) / np.linalg.norm(update.numpy())
                           / np.linalg.norm(u @ vt), 0.97)  # nearly U V^T of -m
      else:
        d = -m / np.sqrt(v)
        self.assertAllClose(1e-3 * d / np.sqrt(np.mean(d * d)), update, rtol=1e-6)

  def test_invariant_to_gradient_and_parameter_scale(self):
    rng = np.random.default_rng(2)
    for config in ({}, {"orthogonalize": False}):
      rule = keras_l2o.rules.get("general", **config)
      meta = _perturbed(rule, dtype=np.float32)
      for shape in ([20, 12], [3, 3, 4, 8], [16], []):
        grads = [rng.normal(size=shape).astype(np.float32) for _ in range(4)]
        var = rng.normal(size=shape).astype(np.float32)
        updates = {}
        for g_scale, p_scale in ((1.0, 1.0), (1000.0, 1.0), (1e-3, 1.0), (1.0, 1000.0)):
          state = rule.init_state(tf.constant(var))
          for t, g in enumerate(grads, 1):
            update, state = rule.apply(meta, tf.constant(g * g_scale), tf.constant(var * p_scale),
                                       state, t)
          updates[(g_scale, p_scale)] = update.numpy()
        base = updates[(1.0, 1.0)]
        self.assertGreater(np.abs(base).max(), 1e-4)
        for key, value in updates.items():
          self.assertAllClose(base, value, rtol=2e-4, atol=1e-8, msg=f"{config} {shape} {key}")

  def test_scaling_the_loss_leaves_the_trajectory_unchanged(self):
    """Trains a tiny two-layer net on a loss and on 1000x the loss: the same parameters."""
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(32, 5)), tf.float32)
    y = tf.constant(rng.normal(size=(32, 2)), tf.float32)
    init = [rng.normal(size=(5, 8)) * 0.5, np.zeros(8), rng.normal(size=(8, 2)) * 0.5]
    rule = keras_l2o.rules.get("general")
    meta = _perturbed(rule, dtype=np.float32, scale=0.1)
    finals = []
    for loss_scale in (1.0, 1000.0):
      params = [tf.constant(p, tf.float32) for p in init]
      states = [rule.init_state(p) for p in params]
      for t in range(1, 31):
        with tf.GradientTape() as tape:
          tape.watch(params)
          h = tf.tanh(x @ params[0] + params[1])
          loss = loss_scale * tf.reduce_mean(tf.square(h @ params[2] - y))
        grads = tape.gradient(loss, params)
        new = [keras_l2o.step.functional_step(rule, meta, g, p, s, t, 10.0)
               for g, p, s in zip(grads, params, states)]
        params, states = [n[0] for n in new], [n[1] for n in new]
      finals.append([p.numpy() for p in params])
    moved = max(np.abs(a - b).max() for a, b in zip(finals[0], init))
    self.assertGreater(moved, 0.05)
    for a, b in zip(*finals):
      self.assertAllClose(a, b, rtol=1e-3, atol=1e-4)

  def test_newton_schulz_singular_values_near_one_same_vectors(self):
    rng = np.random.default_rng(4)
    for shape in ([8, 20], [20, 8], [3, 5, 7], [1, 9]):
      x = rng.normal(size=shape) * np.exp(0.5 * rng.normal(size=shape[:-1] + [1]))
      o = newton_schulz.orthogonalise(tf.constant(x, tf.float64)).numpy()
      for xi, oi in zip(x.reshape((-1,) + x.shape[-2:]), o.reshape((-1,) + o.shape[-2:])):
        s = np.linalg.svd(oi, compute_uv=False)
        self.assertBetween(s.min(), 0.6, 1.25)
        self.assertBetween(s.max(), 0.6, 1.25)
        u, _, vt = np.linalg.svd(xi, full_matrices=False)
        core = u.T @ oi @ vt.T  # diagonal iff o has x's singular vectors
        self.assertLess(np.abs(core - np.diag(np.diag(core))).max(), 1e-6)
        self.assertGreater(np.diag(core).min(), 0.6)
    with self.assertRaisesRegex(ValueError, "rank >= 2. Received shape"):
      newton_schulz.orthogonalise(tf.ones([4]))

  def test_time_features_change_nothing_at_init(self):
    plain = keras_l2o.rules.get("general")
    timed = keras_l2o.rules.get("general", num_training_steps=100)
    self.assertEqual(timed.meta_param_shapes()["skip"], (30, 1))
    g = tf.constant(np.random.default_rng(5).normal(size=(6, 4)), tf.float32)
    a, _ = plain.apply(plain.init_meta_params(0), g, tf.ones([6, 4]), plain.init_state(g), 3)
    b, _ = timed.apply(timed.init_meta_params(0), g, tf.ones([6, 4]), timed.init_state(g), 3)
    self.assertAllClose(a, b, rtol=1e-6)

  def test_orthogonalize_max_dim_skips_newton_schulz_above_it_only(self):
    rule = keras_l2o.rules.get("general", orthogonalize_max_dim=4)
    self.assertEqual(rule.get_config()["orthogonalize_max_dim"], 4)
    self.assertNotIn("orthogonalize_max_dim", keras_l2o.rules.get("general").get_config())
    rng = np.random.default_rng(0)
    small, large = (tf.constant(rng.normal(size=s), tf.float32) for s in ((2, 3, 4, 9), (5, 6)))
    self.assertAllClose(rule.finish(large), 1e-3 * large / tf.sqrt(tf.reduce_mean(large ** 2)),
                        rtol=1e-6)
    self.assertAllClose(rule.finish(small), keras_l2o.rules.get("general").finish(small),
                        rtol=0, atol=0)
    self.assertFalse(rule.orthogonalises([5, 6]))
    self.assertTrue(rule.orthogonalises([3, 3, 4, 9]))
    self.assertFalse(keras_l2o.rules.get("general", orthogonalize=False).orthogonalises([2, 2]))

  def test_bad_config_is_refused(self):
    for kwargs, text in (({"hidden_sizes": [8, 0]}, "hidden_sizes.*Received: hidden_sizes=\\[8, 0"),
                         ({"step_scale": 0.0}, "step_scale.*Received: step_scale=0.0"),
                         ({"orthogonalize": 1}, "orthogonalize.*Received: orthogonalize=1"),
                         ({"ns_steps": 0}, "ns_steps.*Received: ns_steps=0"),
                         ({"num_training_steps": -5}, "num_training_steps.*Received: "
                                                      "num_training_steps=-5"),
                         ({"orthogonalize_max_dim": 0}, "orthogonalize_max_dim.*Received: "
                                                        "orthogonalize_max_dim=0")):
      with self.assertRaisesRegex(ValueError, text):
        keras_l2o.rules.get("general", **kwargs)


class KerasTest(tf.test.TestCase):

  def test_fit_trains_and_save_load_round_trip(self):
    model = testing_utils.digits_mlp(seed=0, hidden=24)
    optimizer = keras_l2o.LearnedOptimizer(
        "general", meta_params=_perturbed(keras_l2o.rules.get("general"), scale=0.05,
                                          dtype=np.float32), learning_rate=5.0)
    losses = testing_utils.compile_and_fit(model, optimizer, epochs=4)
    self.assertLess(losses[-1], 0.6 * losses[0], losses)
    path = os.path.join(self.get_temp_dir(), "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    self.assertEqual(loaded.optimizer.rule, optimizer.rule)
    for a, b in zip(tf.nest.flatten(optimizer.meta_params), tf.nest.flatten(
        loaded.optimizer.meta_params)):
      self.assertAllEqual(a.numpy(), b.numpy())
    for variable, twin in zip(model.trainable_variables, loaded.trainable_variables):
      for a, b in zip(optimizer.state_for(variable), loaded.optimizer.state_for(twin)):
        self.assertAllEqual(a.numpy(), b.numpy())
    # Training continues identically from the loaded copy.
    x, y = testing_utils.digits(64)
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0)
    self.assertLess(testing_utils.max_abs_diff(testing_utils.weights_of(model),
                                               testing_utils.weights_of(loaded)), 1e-6)

  def test_export_warns_and_steps_the_vector_path(self):
    path = os.path.join(self.get_temp_dir(), "export")
    with self.assertLogs("absl", "WARNING") as logs:
      keras_l2o.LearnedOptimizer("general").export(path)
    self.assertIn("layout_free is False", "\n".join(logs.output))
    exported = tf.saved_model.load(path)
    state = exported.init_state(tf.constant(3))
    self.assertEqual(tuple(state["momentum"].shape), (3, 1))
    out = exported.step(tf.constant([1.0, -2.0, 0.5]), tf.zeros([3]), state,
                        tf.constant(0, tf.int64))
    self.assertAllClose([-1e-3, 1e-3, -1e-3], out["var"], rtol=1e-5)  # Adam's first step


if __name__ == "__main__":
  tf.test.main()
