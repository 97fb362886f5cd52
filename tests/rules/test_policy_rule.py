"""The Li & Malik policy rule (gps_policy): features, mean, both paths, export, evaluation."""

import os

import doctest

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

import keras_l2o
from keras_l2o import evaluation
from keras_l2o import meta_params as meta_params_lib
from keras_l2o import problems
from keras_l2o import step as step_lib
from keras_l2o.rules import policy

_FAMILY = problems.get("logistic_regression", seed=2)


def _rule(**config):
  config = {"dimension": 4, "history": 25, "hidden_units": (50,), "activation": "relu", **config}
  return keras_l2o.rules.get("gps_policy", **config)


def _perturbed(rule, seed=3, scale=0.05):
  """Initial meta-parameters plus noise, so that every weight matters."""
  params = meta_params_lib.to_numpy(rule.init_meta_params(seed))
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda a: (a + scale * rng.normal(size=a.shape)).astype(np.float32), params)


def _loss_and_grad(tensors, x):
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = _FAMILY.loss(tensors, [x], _FAMILY.batch(tensors, 0))
  return loss, tape.gradient(loss, x)


def _functional_run(rule, meta, tensors, steps, learning_rate=1.0):
  """Parameters after each step and the losses before each, by functional_step."""
  x = _FAMILY.init_params(tensors)[0]
  state = rule.init_state(x)
  xs, losses = [], []
  for t in range(1, steps + 1):
    loss, grad = _loss_and_grad(tensors, x)
    x, state = step_lib.functional_step(rule, meta, grad, x, state, t, learning_rate, loss=loss)
    xs.append(x.numpy())
    losses.append(float(loss))
  return np.stack(xs), np.array(losses), state


def _numpy_gradient_descent(tensors, rate, steps):
  x = tf.cast(_FAMILY.init_params(tensors)[0], tf.float64)
  xs = []
  for _ in range(steps):
    _, grad = _loss_and_grad(tensors, x)
    x = x - rate * grad
    xs.append(x.numpy())
  return np.stack(xs)


class FeaturesTest(tf.test.TestCase):

  def test_hand_built_history(self):
    """d = 2, H = 2: zero left padding, oldest first, (f_i - f_{i-1}) / f_{i-1}."""
    rule = _rule(dimension=2, history=2, hidden_units=())
    losses = [4.0, 2.0, 3.0, 1.5]
    grads = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]
    actions = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
    state = rule.init_state(tf.zeros([2]))
    expected = [
        # step 1: no previous loss, all histories zero
        [0, 0] + [0, 0, 0, 0] + [1, 2] + [0, 0, 0, 0],
        # step 2: change (2 - 4) / 4 = -0.5; gradient and step of step 1 last
        [0, -0.5] + [0, 0, 1, 2] + [3, 4] + [0, 0, 0.1, 0.2],
        # step 3: (3 - 2) / 2 = 0.5
        [-0.5, 0.5] + [1, 2, 3, 4] + [5, 6] + [0.1, 0.2, 0.3, 0.4],
        # step 4: (1.5 - 3) / 3 = -0.5; the oldest entries have dropped out
        [0.5, -0.5] + [3, 4, 5, 6] + [7, 8] + [0.3, 0.4, 0.5, 0.6],
    ]
    for t in range(4):
      loss, grad = tf.constant(losses[t]), tf.constant(grads[t])
      observation = rule.observe(grad, state, t + 1, loss)
      self.assertAllClose(observation, expected[t], rtol=1e-6, atol=0)
      if t < 3:
        state = rule.next_state(grad, state, t + 1, loss, tf.constant(actions[t]))
    self.assertEqual(rule.observation_size, 2 + 2 * 5)

  def test_relative_change(self):
    cases = [(3.0, 2.0, True, 0.5), (-3.0, -2.0, True, 0.5), (1.0, -4.0, True, -1.25),
             (5.0, 0.0, True, 5e12), (5.0, 2.0, False, 0.0)]
    for loss, previous, has_previous, expected in cases:
      got = policy.relative_change(tf.constant(loss, tf.float64), tf.constant(previous, tf.float64),
                                   tf.constant(has_previous))
      self.assertAllClose(got, expected, rtol=1e-12)

  def test_sizes_of_the_p1_policy(self):
    rule = keras_l2o.rules.get("gps_policy", dimension=4, history=25, hidden_units=(50,),
                               activation="relu")
    self.assertEqual(rule.observation_size, 229)  # 25 + 100 + 4 + 100; with x_t: 233
    self.assertEqual(rule.meta_param_shapes(), {
        "normalizer": {"mean": (229,), "std": (229,)}, "hidden_0": {"kernel": (229, 50),
                                                                    "bias": (50,)},
        "output": {"kernel": (50, 4), "bias": (4,)}, "log_variance": (4,)})
    self.assertEqual(rule.state_floats_per_parameter(), 3 * 25 + 1)
    self.assertAllClose(rule.variance(rule.init_meta_params(0)), [0.01] * 4, rtol=1e-6)
    self.assertEqual(rule.gradient_slice, slice(125, 129))

  def test_docstring_examples(self):
    failed, attempted = doctest.testmod(policy)
    self.assertGreater(attempted, 0)
    self.assertEqual(failed, 0)


class MeanTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.parameters(("relu", (9, 8)), ("softplus", (10,)), ("relu", ()))
  def test_mean_matches_numpy(self, activation, hidden_units):
    rule = _rule(dimension=3, history=4, hidden_units=hidden_units, activation=activation)
    meta = _perturbed(rule, scale=0.5)
    meta["normalizer"]["std"] = np.abs(meta["normalizer"]["std"]).astype(np.float32)
    meta["normalizer"]["std"][:5] = [1e-5, 0.0, 2e-3, 1e-3, 0.5]  # three below the floor
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(6, rule.observation_size))
    z = (obs - meta["normalizer"]["mean"]) / np.maximum(meta["normalizer"]["std"], 1e-3)
    act = (lambda u: np.maximum(u, 0.0)) if activation == "relu" else (
        lambda u: np.logaddexp(0.0, u))
    for i in range(len(hidden_units)):
      z = act(z @ meta[f"hidden_{i}"]["kernel"] + meta[f"hidden_{i}"]["bias"])
    expected = z @ meta["output"]["kernel"] + meta["output"]["bias"]
    got = rule.mean(tf.nest.map_structure(tf.constant, meta), tf.constant(obs, tf.float64))
    self.assertAllClose(got, expected, rtol=1e-5, atol=1e-5)
    self.assertGreater(np.abs(expected).max(), 0.1)

  @parameterized.parameters(("relu", (50,), 0.1), ("softplus", (50, 20), 0.5),
                            ("relu", (), 0.3))
  def test_initial_policy_is_gradient_descent(self, activation, hidden_units, init_step):
    """By default the mean is -init_step * current gradient: gradient descent with that rate."""
    rule = _rule(hidden_units=hidden_units, activation=activation, init_step=init_step)
    tensors = _FAMILY.sample("test", 0).tensors
    xs, _, _ = _functional_run(rule, rule.init_meta_params(7), tensors, 10)
    expected = _numpy_gradient_descent(tensors, init_step, 10)
    self.assertAllClose(xs, expected, rtol=1e-5, atol=1e-5)
    self.assertGreater(np.abs(expected[-1] - expected[0]).max(), 0.01)

  def test_hand_set_policy_equals_gradient_descent(self):
    """Weights set by hand (not by init_meta_params) so that mean = -0.1 * gradient.

    A standardisation with random mean m and std s is undone by the weights:
    kernel rows of the gradient block -0.1 * s_j, output bias -0.1 * m_grad.
    A ReLU layer next to it holds +g and -g in units 0..7 and random units whose
    output weights are zero.
    """
    rule = _rule(hidden_units=(12,))
    size, g = rule.observation_size, rule.gradient_slice
    rng = np.random.default_rng(5)
    mean, std = rng.normal(size=size), rng.uniform(0.5, 2.0, size=size)
    kernel = rng.normal(size=(size, 12))
    kernel[:, :8] = 0.0
    for j in range(4):
      kernel[g.start + j, j] = std[g.start + j]        # unit j: relu(g_j - m_j)
      kernel[g.start + j, 4 + j] = -std[g.start + j]   # unit 4+j: relu(m_j - g_j)
    bias = np.zeros(12)
    output = np.zeros((12, 4))
    output[:4], output[4:8] = -0.1 * np.eye(4), 0.1 * np.eye(4)
    meta = {"normalizer": {"mean": mean, "std": std}, "log_variance": np.zeros(4),
            "hidden_0": {"kernel": kernel, "bias": bias},
            "output": {"kernel": output, "bias": -0.1 * mean[g]}}
    meta = tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), meta)
    tensors = _FAMILY.sample("validation", 3).tensors
    xs, _, _ = _functional_run(rule, meta, tensors, 10)
    self.assertAllClose(xs, _numpy_gradient_descent(tensors, 0.1, 10), rtol=1e-5, atol=1e-5)


class PathsTest(tf.test.TestCase):

  def test_optimizer_and_functional_paths_identical_over_10_steps(self):
    rule = _rule()
    meta = _perturbed(rule)
    tensors = _FAMILY.sample("test", 1).tensors
    expected, _, expected_state = _functional_run(rule, meta, tensors, 10)
    variable = tf.Variable(_FAMILY.init_params(tensors)[0])
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=meta)
    for t in range(10):
      loss, grad = _loss_and_grad(tensors, tf.convert_to_tensor(variable))
      optimizer.set_loss(loss)
      optimizer.apply([grad], [variable])
      self.assertAllEqual(variable.numpy(), expected[t])
    self.assertEqual(int(optimizer.iterations), 10)
    for slot, value in zip(optimizer.state_for(variable), expected_state):
      self.assertAllEqual(slot.numpy(), value.numpy())
    self.assertGreater(np.abs(expected[-1] - expected[0]).max(), 0.05)

  def test_custom_training_loop_in_a_tf_function(self):
    rule = _rule()
    meta = _perturbed(rule)
    tensors = _FAMILY.sample("test", 1).tensors
    expected, _, _ = _functional_run(rule, meta, tensors, 5)
    variable = tf.Variable(_FAMILY.init_params(tensors)[0])
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=meta)

    @tf.function
    def train_step():
      with tf.GradientTape() as tape:
        loss = _FAMILY.loss(tensors, [variable], _FAMILY.batch(tensors, 0))
      optimizer.set_loss(loss)
      optimizer.apply_gradients([(tape.gradient(loss, variable), variable)])

    for _ in range(5):
      train_step()
    self.assertAllClose(variable.numpy(), expected[-1], rtol=1e-6, atol=1e-7)

  def test_evaluation_runner_passes_the_loss(self):
    rule = _rule()
    meta = _perturbed(rule)
    problem = _FAMILY.sample("test", 4)
    spec = evaluation.OptimizerSpec("policy", rule, meta, 1.0)
    curves = evaluation.Runner(_FAMILY, 8).curves(spec, [problem])
    xs, losses, _ = _functional_run(rule, meta, problem.tensors, 8)
    final = float(_FAMILY.loss(problem.tensors, [tf.constant(xs[-1])],
                               _FAMILY.batch(problem.tensors, 0)))
    self.assertAllClose(curves[0], np.append(losses, final), rtol=1e-5)

  def test_meta_gradient_through_an_unroll(self):
    from keras_l2o import unroll as unroll_lib  # pylint: disable=g-import-not-at-top
    rule = _rule(hidden_units=(8,))
    meta = tf.nest.map_structure(tf.constant, _perturbed(rule))
    tensors = _FAMILY.sample("train", 0).tensors
    with tf.GradientTape() as tape:
      tape.watch(tf.nest.flatten(meta))
      state = unroll_lib.init_state(rule, _FAMILY, tensors)
      losses, final, _ = unroll_lib.unroll(rule, meta, _FAMILY, tensors, state, 5)
      total = tf.reduce_sum(losses) + final
    grads = tape.gradient(total, meta, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    self.assertAllEqual(grads.pop("log_variance"), np.zeros(4))  # the mean does not use it
    grads = [g.numpy() for g in tf.nest.flatten(grads)]
    self.assertTrue(all(np.all(np.isfinite(g)) for g in grads))
    self.assertGreater(min(np.abs(g).max() for g in grads), 1e-6)  # every other leaf matters


class SavingTest(tf.test.TestCase):

  def test_export_and_load(self):
    rule = _rule()
    meta = _perturbed(rule)
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=meta)
    path = optimizer.export(os.path.join(self.get_temp_dir(), "policy"))
    loaded = keras_l2o.load(path)
    self.assertEqual(loaded.rule, rule)
    tf.nest.map_structure(self.assertAllEqual, meta_params_lib.to_numpy(loaded.meta_params),
                          meta)
    tensors = _FAMILY.sample("test", 2).tensors
    expected, _, _ = _functional_run(rule, meta, tensors, 5)
    exported = tf.saved_model.load(path)
    x = _FAMILY.init_params(tensors)[0]
    state = exported.init_state(tf.constant(4))
    for t in range(5):
      loss, grad = _loss_and_grad(tensors, x)
      out = exported.step(grad, x, state, tf.constant(t, tf.int64), loss)
      x, state = out["var"], out["state"]
      self.assertAllClose(x, expected[t], rtol=1e-6, atol=1e-7)

  def test_checkpoint_round_trip_continues_identically(self):
    """Meta-parameters, histories, the stored objective and `iterations` are restored."""
    rule = _rule(hidden_units=(8,))
    tensors = _FAMILY.sample("test", 3).tensors

    def run(optimizer, variable, steps):
      for _ in range(steps):
        loss, grad = _loss_and_grad(tensors, tf.convert_to_tensor(variable))
        optimizer.set_loss(loss)
        optimizer.apply([grad], [variable])

    variable = tf.Variable(_FAMILY.init_params(tensors)[0])
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_perturbed(rule))
    run(optimizer, variable, 3)
    prefix = tf.train.Checkpoint(optimizer=optimizer, x=variable).write(
        os.path.join(self.get_temp_dir(), "ckpt"))
    run(optimizer, variable, 3)
    restored_variable = tf.Variable(tf.zeros([4]))
    restored = keras_l2o.LearnedOptimizer(rule)  # default meta-parameters until restored
    status = tf.train.Checkpoint(optimizer=restored, x=restored_variable).read(prefix)
    restored.build([restored_variable])
    status.assert_consumed()
    self.assertEqual(int(restored.iterations), 3)
    self.assertNotEqual(float(restored._loss_variable.value), 0.0)  # pylint: disable=protected-access
    run(restored, restored_variable, 3)
    self.assertAllEqual(restored_variable.numpy(), variable.numpy())

  def test_config_round_trip(self):
    optimizer = keras_l2o.LearnedOptimizer(_rule(hidden_units=[8, 8], activation="softplus"))
    again = keras_l2o.LearnedOptimizer.from_config(optimizer.get_config())
    self.assertEqual(again.rule, optimizer.rule)
    self.assertEqual(again.rule.get_config()["hidden_units"], (8, 8))
    first = meta_params_lib.to_numpy(optimizer.meta_params)
    tf.nest.map_structure(self.assertAllEqual, first, meta_params_lib.to_numpy(again.meta_params))


class ErrorsTest(tf.test.TestCase):

  def test_loss_is_required(self):
    rule = _rule()
    x = tf.zeros([4])
    with self.assertRaises(ValueError) as ctx:
      step_lib.functional_step(rule, rule.init_meta_params(0), x, x, rule.init_state(x), 1, 1.0)
    self.assertEqual(str(ctx.exception), "Rule 'gps_policy' uses the objective value: pass "
                     "`loss=` (the objective at the current iterate). Received: loss=None")
    optimizer = keras_l2o.LearnedOptimizer(rule)
    variable = tf.Variable(x)
    with self.assertRaisesRegex(ValueError, r"^Rule 'gps_policy' uses the objective value: call "
                                r"optimizer\.set_loss\(loss\) before every apply_gradients"):
      optimizer.apply([x], [variable])
    with self.assertRaisesRegex(ValueError, r"^Rule 'adam' does not use the objective value"):
      keras_l2o.LearnedOptimizer("adam").set_loss(1.0)

  def test_wrong_variable_size(self):
    rule = _rule()
    x = tf.zeros([2, 3])
    with self.assertRaises(ValueError) as ctx:
      rule.apply(rule.init_meta_params(0), x, x, rule.init_state(x), 1, loss=tf.constant(1.0))
    self.assertEqual(str(ctx.exception), "Rule 'gps_policy' with dimension=4 optimises one "
                     "variable of 4 parameters (the policy sees all of them at once). Received a "
                     "variable of shape (2, 3) (6 parameters).")

  def test_bad_config(self):
    cases = [({"hidden_units": (5,)}, "Argument `hidden_units` must be a (possibly empty) tuple "
              "of integers of at least 2 * dimension = 8 (the initial policy passes +g and -g "
              "through). Received: hidden_units=(5,)"),
             ({"activation": "tanh"}, "Argument `activation` must be one of ['relu', "
              "'softplus']. Received: activation='tanh'"),
             ({"history": 0}, "Argument `history` must be an integer in [1, 1024]. Received: "
              "history=0"),
             ({"init_variance": 0.0}, "Argument `init_variance` must be a finite number > 0. "
              "Received: init_variance=0.0")]
    for config, message in cases:
      with self.assertRaises(ValueError) as ctx:
        _rule(**config)
      self.assertEqual(str(ctx.exception), message)


if __name__ == "__main__":
  tf.test.main()
