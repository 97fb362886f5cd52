"""The `gps_general` policy (issue 22): scale-free inputs, controlled steps, one formula in GPS."""


import tempfile

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o.rules import gps_general
from trainers import base
from trainers.gps import group_trainer
from trainers.gps import policy_class


def _random_meta(rule, seed=1):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda t: tf.constant(t.numpy() + 0.5 * rng.normal(size=t.shape), tf.float64),
      rule.init_meta_params(0))


def _run(rule, meta, grads, shape):
  """The rule's updates for a sequence of gradients (float64)."""
  var = tf.zeros(shape, tf.float64)
  state, updates = rule.init_state(var), []
  for t, g in enumerate(grads, start=1):
    update, state = rule.apply(meta, tf.constant(g), var, state, t)
    updates.append(update.numpy())
  return updates


class RuleTest(tf.test.TestCase):

  def test_initial_policy_is_rms_normalised_momentum_over_rms(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.02)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=(5, 3)) * rng.uniform(0.1, 10.0, size=(5, 1)) for _ in range(4)]
    meta = tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), rule.init_meta_params(0))
    got = _run(rule, meta, grads, (5, 3))
    m, v = np.zeros((5, 3)), np.zeros((5, 3))
    for g, update in zip(grads, got):
      m, v = 0.9 * m + 0.1 * g, 0.95 * v + 0.05 * g * g
      d = -m / np.sqrt(v + 1e-10 * v.mean() + 1e-30)
      expected = 0.02 * d / np.sqrt(np.mean(d * d))
      self.assertAllClose(update, expected, rtol=1e-6)

  def test_update_rms_is_step_scale_times_the_bounded_magnitude(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.003, hidden_sizes=[6, 4])
    meta = _random_meta(rule)
    rng = np.random.default_rng(2)
    for shape in [(7,), (4, 6), (3, 3, 2, 5)]:
      grads = [rng.normal(size=shape) * 10.0 ** rng.uniform(-6, 3) for _ in range(5)]
      # Any direction network, magnitude at its initialisation (s = 1): RMS = step_scale.
      meta["magnitude"] = {"kernel": tf.zeros([1, 1], tf.float64), "bias": tf.zeros([1], tf.float64)}
      for update in _run(rule, meta, grads, shape):
        self.assertAllClose(np.sqrt(np.mean(update ** 2)), 0.003, rtol=1e-9)
      # s = exp(3 tanh((w rho_m + b) / 3)), rho_m = log(rms(m_0.9) / rms(m_0.999)).
      meta["magnitude"] = {"kernel": tf.constant([[0.7]], tf.float64),
                           "bias": tf.constant([-0.4], tf.float64)}
      m = np.zeros(shape + (3,))
      for g, update in zip(grads, _run(rule, meta, grads, shape)):
        m = m + (g[..., None] - m) * np.array([0.1, 0.01, 0.001])
        rms = np.sqrt(np.mean(m.reshape(-1, 3) ** 2, axis=0))
        s = np.exp(3 * np.tanh((0.7 * np.log(rms[0] / rms[2]) - 0.4) / 3))
        self.assertAllClose(np.sqrt(np.mean(update ** 2)), 0.003 * s, rtol=1e-9)
      # However large the magnitude's pre-activation, s stays within [e^-3, e^3].
      for bias, bound in ((1e3, np.exp(3.0)), (-1e3, np.exp(-3.0))):
        meta["magnitude"] = {"kernel": tf.zeros([1, 1], tf.float64),
                             "bias": tf.constant([bias], tf.float64)}
        update = _run(rule, meta, grads[:1], shape)[0]
        self.assertAllClose(np.sqrt(np.mean(update ** 2)), 0.003 * bound, rtol=1e-9)

  def test_updates_do_not_depend_on_the_gradients_scale(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01)
    meta = _random_meta(rule, seed=4)
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(6, 4)) for _ in range(6)]
    base_updates = _run(rule, meta, grads, (6, 4))
    for scale in (1e-6, 1e4):
      scaled = _run(rule, meta, [scale * g for g in grads], (6, 4))
      self.assertAllClose(scaled, base_updates, rtol=1e-6, atol=1e-12)
    # The update is not just a sign: it changes with the gradients' direction.
    self.assertGreater(np.abs(base_updates[-1] - base_updates[-2]).max(), 1e-3)

  def test_bad_arguments_name_what_was_received(self):
    with self.assertRaisesRegex(ValueError, "`step_scale`.*Received: step_scale=0"):
      keras_l2o.rules.get("gps_general", step_scale=0)
    with self.assertRaisesRegex(ValueError, r"`hidden_sizes`.*Received: hidden_sizes=\[0\]"):
      keras_l2o.rules.get("gps_general", hidden_sizes=[0])
    for bad in (-0.5, float("nan"), "2", True):
      with self.assertRaisesRegex(ValueError, r"`anneal` must be None or a finite number >= 0\. "
                                  r"Received: anneal="):
        keras_l2o.rules.get("gps_general", anneal=bad)


def _anneal_reference(grads, kernel, bias, step_scale):
  """NumPy: the update RMS of gps_general with `anneal`, for magnitude (kernel [2], bias)."""
  m, v, peak, out = np.zeros(grads[0].shape + (3,)), np.zeros(grads[0].shape), 0.0, []
  for g in grads:
    m = m + (g[..., None] - m) * np.array([0.1, 0.01, 0.001])
    v = 0.95 * v + 0.05 * g * g
    peak = max(peak, v.mean())
    rms = np.sqrt(np.mean(m.reshape(-1, 3) ** 2, axis=0))
    a = kernel[0] * np.log(rms[0] / rms[2]) + kernel[1] * 0.5 * np.log(v.mean() / peak) + bias
    out.append(step_scale * np.exp(3 * np.tanh(a / 3) if a >= 0 else 10 * np.tanh(a / 10)))
  return out


class AnnealTest(tf.test.TestCase):

  def test_default_keeps_the_issue_22_policy_and_its_configuration(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.003)
    self.assertEqual(rule.get_config(), {"hidden_sizes": [8], "step_scale": 0.003})
    self.assertEqual(rule.state_floats_per_parameter(), 4)
    self.assertEqual(rule.meta_param_shapes()["magnitude"]["kernel"], (1, 1))
    annealed = keras_l2o.rules.get("gps_general", step_scale=0.003, anneal=2)
    self.assertEqual(annealed.get_config(), {"hidden_sizes": [8], "step_scale": 0.003,
                                             "anneal": 2.0})
    self.assertEqual(annealed.state_floats_per_parameter(), 5)
    self.assertAllEqual(annealed.init_meta_params(0)["magnitude"]["kernel"], [[0.0], [2.0]])

  def test_initial_annealed_step_follows_the_gradients_rms_over_its_peak(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=2.0)
    meta = tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), rule.init_meta_params(0))
    rng = np.random.default_rng(7)
    # The gradients grow, stay, then shrink 100-fold: the step stays at 0.01 while v rises, then
    # falls with v (the 0.95 EMA of g^2) over its peak.
    scales = [1, 2] + [4] * 60 + [4 * 10.0 ** (-k / 50) for k in range(1, 101)]
    grads = [rng.normal(size=(6, 5)) * c for c in scales]
    got = [np.sqrt(np.mean(u ** 2)) for u in _run(rule, meta, grads, (6, 5))]
    self.assertAllClose(got, _anneal_reference(grads, [0.0, 2.0], 0.0, 0.01), rtol=1e-9)
    self.assertAllClose(got[:4], [0.01] * 4, rtol=1e-9)
    self.assertLess(got[-1], 0.01 * 0.05)  # below the issue-22 policy's floor 0.01 e^-3

  def test_annealed_magnitude_and_its_asymmetric_bound(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.003, anneal=1.0, hidden_sizes=[5])
    meta = _random_meta(rule, seed=8)
    rng = np.random.default_rng(9)
    grads = [rng.normal(size=(4, 3)) * 10.0 ** rng.uniform(-2, 2) for _ in range(8)]
    meta["magnitude"] = {"kernel": tf.constant([[0.6], [1.3]], tf.float64),
                         "bias": tf.constant([0.2], tf.float64)}
    got = [np.sqrt(np.mean(u ** 2)) for u in _run(rule, meta, grads, (4, 3))]
    self.assertAllClose(got, _anneal_reference(grads, [0.6, 1.3], 0.2, 0.003), rtol=1e-9)
    for bias, bound in ((1e3, np.exp(3.0)), (-1e3, np.exp(-10.0))):
      meta["magnitude"] = {"kernel": tf.zeros([2, 1], tf.float64),
                           "bias": tf.constant([bias], tf.float64)}
      update = _run(rule, meta, grads[:1], (4, 3))[0]
      self.assertAllClose(np.sqrt(np.mean(update ** 2)), 0.003 * bound, rtol=1e-9)

  def test_annealed_updates_do_not_depend_on_the_gradients_scale(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=1.5)
    meta = _random_meta(rule, seed=10)
    rng = np.random.default_rng(11)
    grads = [rng.normal(size=(5, 4)) * 0.8 ** t for t in range(8)]
    base_updates = _run(rule, meta, grads, (5, 4))
    for scale in (1e-5, 1e4):
      self.assertAllClose(_run(rule, meta, [scale * g for g in grads], (5, 4)), base_updates,
                          rtol=1e-6, atol=1e-12)


class OneFormulaTest(tf.test.TestCase):

  def test_gps_observation_and_policy_mean_equal_the_optimizers_step(self):
    for anneal in (None, 1.5):
      self._check_one_formula(keras_l2o.rules.get("gps_general", step_scale=0.05, anneal=anneal))

  def _check_one_formula(self, rule):
    meta = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), _random_meta(rule, seed=5))
    shapes, sizes = [(3, 4), (5,)], [12, 5]
    observer = policy_class.observer(rule, sizes)
    obs_state = observer.init(17)
    variables = [tf.Variable(tf.zeros(s)) for s in shapes]
    optimizer = keras_l2o.LearnedOptimizer(rule, meta)
    rng = np.random.default_rng(6)
    for _ in range(3):
      grads = [tf.constant(rng.normal(size=s) * 10.0 ** rng.uniform(-3, 1), tf.float32)
               for s in shapes]
      before = [v.numpy() for v in variables]
      optimizer.apply(grads, variables)
      flat = tf.concat([tf.reshape(g, [-1]) for g in grads], 0)
      features, obs_state = observer.observe(None, None, None, flat, None, None, None, obs_state)
      start = 0
      for size, v, b in zip(sizes, variables, before):
        # The group's S = all of its coordinates, recorded in a permuted order.
        perm = rng.permutation(size)
        group = tf.gather(features[start:start + size], perm)[None, :, None, :]
        means = policy_class.policy_means(rule, meta, group, size)  # [1, S, 1]
        self.assertAllClose(means[0, :, 0], (v.numpy() - b).reshape(-1)[perm], atol=1e-6)
        start += size


class TrainerTest(tf.test.TestCase):

  def test_group_gps_trains_resumes_and_exports_gps_general(self):
    family = problems.get("digits_mlp", hidden_sizes=(4,), activation="relu", horizon=6,
                          init_scale="glorot", batch_size=16)
    settings = dict(num_conditions=1, samples_per_condition=2, coordinates_per_group=8,
                    horizon=6, inner_iterations=2, policy_steps=3, validation_problems=1,
                    momentum_rates=(0.1, 0.3), momentum_values=(0.0, 0.5))
    config = lambda n: group_trainer.GroupGPSConfig(iterations=n, **settings)  # noqa: E731
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01)
    whole_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    whole = group_trainer.GroupGPSTrainer(rule, family, config(2), whole_dir).run()
    self.assertTrue(np.isfinite(whole["last_validation_loss"]))
    split_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    group_trainer.GroupGPSTrainer(rule, family, config(1), split_dir).run()
    resumed = group_trainer.GroupGPSTrainer(rule, family, config(2), split_dir).run()
    self.assertEqual(resumed["last_meta_params_sha256"], whole["last_meta_params_sha256"])
    optimizer = keras_l2o.load(whole_dir, which="last")
    self.assertEqual(optimizer.rule.name, "gps_general")
    # The supervised fit moved the policy away from its initialisation.
    initial = rule.init_meta_params(0)
    moved = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(
        tf.nest.flatten(optimizer.meta_params), tf.nest.flatten(initial)))
    self.assertGreater(moved, 1e-4)
    self.assertNotEqual(base.digest(optimizer.meta_params), base.digest(initial))
    # Whatever GPS learned, the exported optimizer's step has RMS step_scale.
    var = tf.Variable(tf.random.stateless_normal([4, 3], seed=[0, 1]))
    before = var.numpy()
    optimizer.apply([tf.random.stateless_normal([4, 3], seed=[0, 2]) * 1e3], [var])
    rms = np.sqrt(np.mean((var.numpy() - before) ** 2))
    self.assertBetween(rms, 0.01 * np.exp(-3.0) * (1 - 1e-5), 0.01 * np.exp(3.0) * (1 + 1e-5))


class FanInTest(tf.test.TestCase):
  """Option `fan_in_reference`: every kernel's step times n0 / fan-in (six22)."""

  def test_default_omits_the_option_and_bad_values_are_named(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=2.0)
    self.assertEqual(rule.get_config(), {"hidden_sizes": [8], "step_scale": 0.01, "anneal": 2.0})
    wide = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=2.0, fan_in_reference=48)
    self.assertEqual(wide.get_config(), {"hidden_sizes": [8], "step_scale": 0.01, "anneal": 2.0,
                                         "fan_in_reference": 48.0})
    self.assertEqual(wide.state_floats_per_parameter(), 5)  # no extra state
    for bad in (0, -3.0, float("nan")):
      with self.assertRaisesRegex(ValueError, "`fan_in_reference`.*Received: fan_in_reference="):
        keras_l2o.rules.get("gps_general", fan_in_reference=bad)

  def test_kernel_steps_are_the_initial_policy_times_reference_over_fan_in(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.02, fan_in_reference=6.0)
    meta = tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), rule.init_meta_params(0))
    rng = np.random.default_rng(12)
    # fan-in 4 (Dense), 3 * 3 * 2 = 18 (conv), and a bias (rank 1, not rescaled).
    for shape, factor in (((4, 5), 6.0 / 4), ((3, 3, 2, 5), 6.0 / 18), ((7,), 1.0)):
      self.assertEqual(rule.width_scale(shape), factor)
      grads = [rng.normal(size=shape) * 10.0 ** rng.uniform(-3, 2) for _ in range(4)]
      m, v = np.zeros(shape), np.zeros(shape)
      for g, update in zip(grads, _run(rule, meta, grads, shape)):
        m, v = 0.9 * m + 0.1 * g, 0.95 * v + 0.05 * g * g
        d = -m / np.sqrt(v + 1e-10 * v.mean() + 1e-30)
        self.assertAllClose(update, 0.02 * factor * d / np.sqrt(np.mean(d * d)), rtol=1e-6)
        self.assertAllClose(np.sqrt(np.mean(update ** 2)), 0.02 * factor, rtol=1e-9)

  def test_identity_where_every_fan_in_is_the_reference(self):
    # gps-mnist's training net: kernels 48x48, 48x48, 48x10 and their biases.
    off = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=2.0)
    on = keras_l2o.rules.get("gps_general", step_scale=0.01, anneal=2.0, fan_in_reference=48)
    meta = tf.nest.map_structure(lambda t: tf.cast(t, tf.float32), _random_meta(off, seed=13))
    rng = np.random.default_rng(14)
    for shape in ((48, 48), (48, 10), (10,)):
      grads = [rng.normal(size=shape).astype(np.float32) * 0.7 ** t for t in range(5)]
      var, states, outs = tf.zeros(shape), [off.init_state(tf.zeros(shape)),
                                            on.init_state(tf.zeros(shape))], [[], []]
      for t, g in enumerate(grads, start=1):
        for i, rule in enumerate((off, on)):
          update, states[i] = rule.apply(meta, tf.constant(g), var, states[i], t)
          outs[i].append(update.numpy())
      self.assertAllEqual(outs[1], outs[0])  # bit for bit

  def test_the_keras_optimizer_keeps_the_shape_the_step_depends_on(self):
    # The fast path may lay a variable out as another matrix; with the option it must not (a
    # 48x48 kernel re-laid out as 48 rows or more would get another fan-in).
    self.assertTrue(keras_l2o.rules.get("gps_general").layout_free(tf.TensorShape([48, 48])))
    for reference, shape, factor in ((48, (48, 48), 1.0), (48, (200, 200), 0.24), (48, (200,), 1.0),
                                     (6, (3, 3, 2, 5), 6 / 18)):
      rule = keras_l2o.rules.get("gps_general", step_scale=0.01, fan_in_reference=reference)
      self.assertFalse(rule.layout_free(tf.TensorShape(shape)))
      var = tf.Variable(tf.random.stateless_normal(shape, seed=[0, 3]))
      before = var.numpy()
      optimizer = keras_l2o.LearnedOptimizer(rule, rule.init_meta_params(0))
      optimizer.apply([tf.random.stateless_normal(shape, seed=[0, 4])], [var])
      rms = np.sqrt(np.mean((var.numpy() - before) ** 2))
      self.assertAllClose(rms, 0.01 * factor, rtol=1e-5)

  def test_the_factor_of_a_shape_known_only_when_run(self):
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01, fan_in_reference=6.0)
    self.assertIsNone(rule.width_scale(tf.TensorShape([None, 5])))
    self.assertEqual(keras_l2o.rules.get("gps_general").width_scale(tf.TensorShape([None, 5])), 1.0)
    meta = rule.init_meta_params(0)
    for shape, factor in (((4, 5), 6.0 / 4), ((3, 4, 5), 6.0 / 12), ((7,), 1.0)):
      spec = tf.TensorSpec([None] * len(shape), tf.float32)  # the rank is known, the sizes are not
      state_spec = rule.state_type(tf.TensorSpec([None] * (len(shape) + 1), tf.float32), spec)
      apply = tf.function(lambda g, s: rule.apply(meta, g, g, s, 1)[0],
                          input_signature=[spec, state_spec])
      grad = tf.random.stateless_normal(shape, seed=[0, 5])
      update = apply(grad, rule.init_state(grad))
      self.assertAllClose(np.sqrt(np.mean(update.numpy() ** 2)), 0.01 * factor, rtol=1e-5)

  def test_group_gps_refuses_a_family_whose_fan_in_differs(self):
    family = problems.get("digits_mlp", hidden_sizes=(4,), activation="relu", horizon=6,
                          init_scale="glorot", batch_size=16)
    rule = keras_l2o.rules.get("gps_general", step_scale=0.01, fan_in_reference=48)
    config = group_trainer.GroupGPSConfig(iterations=1, num_conditions=1, horizon=6)
    with self.assertRaisesRegex(ValueError, r"fan-in must equal fan_in_reference=48; the "
                                r"family's parameter shapes are \[\(64, 4\)"):
      group_trainer.GroupGPSTrainer(rule, family, config, tempfile.mkdtemp(dir=self.get_temp_dir()))


if __name__ == "__main__":
  tf.test.main()
