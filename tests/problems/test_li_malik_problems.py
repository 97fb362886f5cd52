"""The Li & Malik problem families: draws, splits, objectives by hand, gradients, optimum."""

import json

import doctest

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from scipy import optimize

from keras_l2o import problems
from keras_l2o.problems import li_malik

NAMES = ("logistic_regression", "robust_linear_regression", "two_layer_net")
NUM_PARAMETERS = {"logistic_regression": 4, "robust_linear_regression": 4, "two_layer_net": 12}


def _named(names):
  return [(name, name) for name in names]


def _value_and_grad(family, tensors, x):
  x = tf.constant(x, tf.float64)
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = family.loss(tensors, [x], family.batch(tensors, 0))
  return float(loss), tape.gradient(loss, x).numpy()


def _tiny(inputs, labels, x0):
  return {"inputs": tf.constant(inputs, tf.float32), "labels": tf.constant(labels, tf.float32),
          "x0": tf.constant(x0, tf.float32)}


def _softplus(z):
  return np.logaddexp(0.0, z)


class DrawsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_named(NAMES))
  def test_draws_are_deterministic_per_seed(self, name):
    family = problems.get(name, seed=4)
    first, again = family.sample("validation", 3), problems.get(name, seed=4).sample(
        "validation", 3)
    for key in ("inputs", "labels", "x0"):
      self.assertAllEqual(first.tensors[key], again.tensors[key])
    other = problems.get(name, seed=5).sample("validation", 3)
    self.assertNotAllClose(first.tensors["inputs"], other.tensors["inputs"])

  @parameterized.named_parameters(*_named(NAMES))
  def test_splits_are_disjoint_draws(self, name):
    family = problems.get(name, seed=0)
    seeds = {(split, i): problems.problem_seed(0, split, i) for split in problems.SPLITS
             for i in range(20)}
    self.assertLen(set(seeds.values()), 60)
    draws = [family.sample(split, i) for split in problems.SPLITS for i in range(3)]
    for i, a in enumerate(draws):
      for b in draws[i + 1:]:
        self.assertNotAllClose(a.tensors["inputs"], b.tensors["inputs"])
        self.assertNotAllClose(a.tensors["x0"], b.tensors["x0"])

  @parameterized.named_parameters(*_named(NAMES))
  def test_full_batch_flat_parameters_and_standard_normal_start(self, name):
    family = problems.get(name, seed=1)
    self.assertTrue(family.full_batch)
    self.assertEqual(family.default_horizon, 40)
    problem = family.sample("train", 0)
    (x0,) = family.init_params(problem.tensors)
    self.assertEqual(x0.shape, (NUM_PARAMETERS[name],))
    self.assertEqual(family.num_parameters(), NUM_PARAMETERS[name])
    inputs, labels = family.batch(problem.tensors, 0)
    self.assertEqual(inputs.shape[0], 100)
    self.assertAllEqual(inputs, family.batch(problem.tensors, 7)[0])
    self.assertAllEqual(labels, family.batch(problem.tensors, 7)[1])
    starts = np.concatenate([family.init_params(family.sample("test", i).tensors)[0].numpy()
                             for i in range(100)])
    self.assertLess(abs(starts.mean()), 0.15)
    self.assertBetween(starts.std(), 0.9, 1.1)

  def test_logistic_data_has_two_equal_classes(self):
    family = problems.get("logistic_regression", seed=0)
    inputs, labels = family.batch(family.sample("test", 0).tensors, 0)
    self.assertEqual(inputs.shape, (100, 3))
    self.assertAllEqual(labels.numpy(), [0.0] * 50 + [1.0] * 50)

  def test_robust_regression_labels_are_linear_per_cluster(self):
    family = problems.get("robust_linear_regression", seed=0)
    inputs, labels = (t.numpy().astype(np.float64)
                      for t in family.batch(family.sample("test", 0).tensors, 0))
    residual_std = []
    for k in range(4):
      x, y = inputs[25 * k:25 * (k + 1)], labels[25 * k:25 * (k + 1)]
      design = np.concatenate([x, np.ones((25, 1))], axis=1)
      coef = np.linalg.lstsq(design, y, rcond=None)[0]
      residual_std.append(np.sqrt(np.sum((y - design @ coef) ** 2) / (25 - 4)))
      self.assertAllClose(np.cov(x.T), np.eye(3), atol=0.8)  # identity covariance
    self.assertBetween(np.mean(residual_std), 0.35, 0.65)  # noise std 0.5

  def test_two_layer_net_clusters_share_a_label_and_both_classes_occur(self):
    family = problems.get("two_layer_net", seed=0)
    for index in range(10):
      labels = family.batch(family.sample("test", index).tensors, 0)[1].numpy()
      per_cluster = labels.reshape(4, 25)
      self.assertAllEqual(per_cluster, np.repeat(per_cluster[:, :1], 25, axis=1))
      self.assertEqual(sorted(set(labels.tolist())), [0.0, 1.0])


class ObjectivesTest(tf.test.TestCase, parameterized.TestCase):

  def test_logistic_regression_by_hand(self):
    family = problems.get("logistic_regression", dims=2, l2=0.1)
    inputs = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]])
    labels = np.array([1.0, 0.0, 1.0])
    x = np.array([0.3, -0.2, 0.1])  # w = (0.3, -0.2), b = 0.1
    z = inputs @ x[:2] + x[2]
    expected = np.mean(-labels * np.log(1 / (1 + np.exp(-z))) -
                       (1 - labels) * np.log(1 - 1 / (1 + np.exp(-z)))) + 0.05 * 0.13
    tensors = _tiny(inputs, labels, x)
    got = family.loss(tensors, family.init_params(tensors), family.batch(tensors, 0))
    self.assertAllClose(got, expected, rtol=1e-6)

  def test_robust_linear_regression_by_hand(self):
    family = problems.get("robust_linear_regression", dims=2, c=2.0)
    inputs = np.array([[1.0, 2.0], [-1.0, 0.5]])
    labels = np.array([1.0, -2.0])
    x = np.array([0.5, 0.25, -1.0])
    # residuals: 1 - (0.5 + 0.5 - 1) = 1 and -2 - (-0.5 + 0.125 - 1) = -0.625
    expected = np.mean([1.0 / (4.0 + 1.0), 0.390625 / (4.0 + 0.390625)])
    tensors = _tiny(inputs, labels, x)
    got = family.loss(tensors, family.init_params(tensors), family.batch(tensors, 0))
    self.assertAllClose(got, expected, rtol=1e-6)

  def test_two_layer_net_by_hand(self):
    family = problems.get("two_layer_net", hidden_units=3, num_classes=2, l2=0.2)
    rng = np.random.default_rng(0)
    inputs, labels = rng.normal(size=(5, 2)), np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    x = rng.normal(size=family.num_parameters())
    w, b = x[:6].reshape(3, 2), x[6:9]
    u, c = x[9:15].reshape(2, 3), x[15:]
    logits = np.maximum(inputs @ w.T + b, 0.0) @ u.T + c
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -np.mean(log_probs[np.arange(5), labels.astype(int)]) + 0.1 * (
        np.sum(w ** 2) + np.sum(u ** 2))
    tensors = _tiny(inputs, labels, x)
    got = family.loss(tensors, family.init_params(tensors), family.batch(tensors, 0))
    self.assertAllClose(got, expected, rtol=1e-5)
    self.assertEqual(family.num_parameters(), 3 * 2 + 3 + 2 * 3 + 2)

  @parameterized.named_parameters(*_named(NAMES))
  def test_gradient_matches_finite_differences_in_float64(self, name):
    family = problems.get(name, seed=3)
    tensors = family.sample("train", 1).tensors
    x = family.init_params(tensors)[0].numpy().astype(np.float64)
    _, grad = _value_and_grad(family, tensors, x)
    eps = 1e-6
    numeric = np.zeros_like(x)
    for j in range(len(x)):
      step = np.zeros_like(x)
      step[j] = eps
      numeric[j] = (_value_and_grad(family, tensors, x + step)[0] -
                    _value_and_grad(family, tensors, x - step)[0]) / (2 * eps)
    self.assertAllClose(grad, numeric, rtol=1e-5, atol=1e-8)
    self.assertGreater(np.abs(grad).max(), 1e-3)

  def test_logistic_optimum_by_scipy_has_zero_gradient_and_matches_sklearn(self):
    from sklearn import linear_model  # pylint: disable=g-import-not-at-top
    family = problems.get("logistic_regression", seed=0)
    tensors = family.sample("test", 5).tensors
    x0 = family.init_params(tensors)[0].numpy().astype(np.float64)
    result = optimize.minimize(lambda x: _value_and_grad(family, tensors, x), x0, jac=True,
                               method="L-BFGS-B", options={"ftol": 0.0, "gtol": 1e-12,
                                                           "maxiter": 1000})
    self.assertLess(np.abs(result.jac).max(), 1e-7)
    self.assertLess(result.fun, _value_and_grad(family, tensors, x0)[0])
    # scikit-learn minimises C * sum(log loss) + |w|^2 / 2 (bias not penalised): C = 1 / (n l2).
    inputs, labels = (t.numpy().astype(np.float64) for t in family.batch(tensors, 0))
    model = linear_model.LogisticRegression(C=1.0 / (100 * 5e-4), tol=1e-12, max_iter=10000)
    model.fit(inputs, labels)
    self.assertAllClose(result.x, np.append(model.coef_[0], model.intercept_), atol=1e-6)


class RegistryTest(tf.test.TestCase, parameterized.TestCase):

  def test_registered(self):
    for name in NAMES:
      self.assertIn(name, problems.names())
      self.assertEqual(problems.get(name).name, name)

  @parameterized.parameters(("logistic_regression", {"dims": 5, "l2": 0.01}),
                            ("robust_linear_regression", {"c": 2.0, "noise_std": 0.1}),
                            ("two_layer_net", {"hidden_units": 4, "num_classes": 3}))
  def test_config_round_trip(self, name, config):
    family = problems.get(name, seed=2, **config)
    again = problems.get(name, **json.loads(json.dumps(family.get_config())))
    self.assertEqual(again.get_config(), family.get_config())
    a, b = family.sample("test", 1), again.sample("test", 1)
    for key in a.tensors:
      self.assertAllEqual(a.tensors[key], b.tensors[key])

  def test_bad_arguments(self):
    cases = [("logistic_regression", {"dims": 0}, "Argument `dims` must be a positive integer. "
              "Received: dims=0"),
             ("logistic_regression", {"l2": -1.0}, "Argument `l2` must be a non-negative "
              "number. Received: l2=-1.0"),
             ("robust_linear_regression", {"c": 0.0}, "Argument `c` must be a positive number. "
              "Received: c=0.0"),
             ("two_layer_net", {"num_classes": 1}, "Arguments `num_classes` and `num_clusters` "
              "must be at least 2 (two classes must occur). Received: num_classes=1, "
              "num_clusters=4")]
    for name, config, message in cases:
      with self.assertRaises(ValueError) as ctx:
        problems.get(name, **config)
      self.assertEqual(str(ctx.exception), message)

  def test_docstring_example_and_random_covariance(self):
    failed, attempted = doctest.testmod(li_malik)
    self.assertGreater(attempted, 0)
    self.assertEqual(failed, 0)
    covariance = li_malik.random_covariance(np.random.default_rng(0), 3)
    self.assertAllClose(covariance, covariance.T)
    eigenvalues = np.linalg.eigvalsh(covariance)
    self.assertTrue(np.all((eigenvalues >= 0.2 - 1e-12) & (eigenvalues <= 2.0 + 1e-12)))


if __name__ == "__main__":
  tf.test.main()
