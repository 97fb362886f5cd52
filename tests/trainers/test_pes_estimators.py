"""PES is unbiased over a trajectory split into truncations; truncated ES and BPTT are not.

The problem: SGD with a learned log step size theta (rule `learned_lr`) on a
diagonal quadratic f(w) = 1/2 sum_k a_k w_k^2, for T = M K steps in M
truncations of K. Then w_t = (1 - eta a)^t w_0 with eta = exp(theta), and the
whole trajectory's meta-loss (each truncation's mean loss after its updates,
summed over the truncations)

    J(theta) = 1/K sum_{t=1}^{T} sum_k 1/2 a_k w_0k^2 (1 - eta a_k)^(2t)

has the exact derivative

    dJ/dtheta = eta / K sum_t sum_k 1/2 a_k w_0k^2 2t (1 - eta a_k)^(2t - 1) (-a_k),

which the test also checks against float64 autodiff through the full unroll.
Many independent antithetic pairs (all on the same problem, in one vectorised
computation per truncation) give independent estimates; their mean must match
the exact derivative within its confidence interval for PES, and miss it by
many standard errors for ES, while truncated BPTT (exact gradients of each
truncation with its starting state held fixed) misses it by a wide margin.
"""


import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from trainers import es_estimators

CURVATURES = np.array([0.05, 0.2, 0.5, 1.0, 1.6])
START = np.array([1.0, -1.0, 0.5, 1.0, -0.5])
ETA = 0.35
TRUNCATION, TRUNCATIONS = 5, 8  # K, M
SIGMA = 0.01
PAIRS = 2000


class DiagonalQuadratic(problems.ProblemFamily):
  """f(w) = 1/2 sum_k a_k w_k^2 from a fixed start: one deterministic problem."""

  name = "diagonal_quadratic"
  full_batch = True

  def _sample_tensors(self, split, rng, seed):
    return {"a": tf.constant(CURVATURES), "w0": tf.constant(START)}

  def init_params(self, tensors):
    return [tf.identity(tensors["w0"])]

  def batch(self, tensors, step):
    return ()

  def losses(self, tensors, params, batch):
    (w,) = params
    return tf.reshape(0.5 * tf.reduce_sum(tensors["a"] * w * w), [1])


def closed_form_gradient(theta):
  eta = np.exp(theta)
  t = np.arange(1, TRUNCATION * TRUNCATIONS + 1)[:, None]
  q = 1.0 - eta * CURVATURES
  d_eta = np.sum(0.5 * CURVATURES * START**2 * 2 * t * q**(2 * t - 1) * -CURVATURES)
  return eta * d_eta / TRUNCATION


def _rule_and_theta():
  rule = keras_l2o.rules.get("learned_lr", initial_learning_rate=ETA)
  theta = {"log_learning_rate": tf.constant(np.log(ETA), tf.float64)}
  return rule, theta


def autodiff_gradient(family, truncated):
  """d(meta-loss)/d(theta) by float64 backprop: through the whole trajectory, or per truncation."""
  rule, theta = _rule_and_theta()
  tensors = family.sample("train", 0).tensors
  state = unroll_lib.init_state(rule, family, tensors, tf.float64)
  total = 0.0
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(theta["log_learning_rate"])
    objective = tf.constant(0.0, tf.float64)
    for _ in range(TRUNCATIONS):
      if truncated:  # the truncation starts from a constant state
        state = tf.nest.map_structure(tf.stop_gradient, state)
      losses, final, state = unroll_lib.unroll(rule, theta, family, tensors, state, TRUNCATION,
                                               second_derivatives=True)
      piece = tf.reduce_mean(unroll_lib.losses_after_updates(losses, final))
      objective += piece
      if truncated:
        total += float(tape.gradient(piece, theta["log_learning_rate"]))
  if truncated:
    return total
  return float(tape.gradient(objective, theta["log_learning_rate"]))


def es_estimates(family, estimator, vectorized=True, pairs=PAIRS, seed=0):
  """Each pair's estimate summed over the trajectory's truncations: [pairs]."""
  rule, theta = _rule_and_theta()
  one = family.sample("train", 0).tensors
  tensors = es_estimators.tile(tf.nest.map_structure(lambda t: t[None], one), pairs)
  particles = es_estimators.init_particles(rule, family, es_estimators.tile(tensors, 2),
                                           tf.float64)
  xi = tf.nest.map_structure(lambda t: tf.zeros([pairs, *t.shape], t.dtype), theta)

  @tf.function
  def truncation(particles, xi, counter):
    eps = es_estimators.sample_perturbations(theta, pairs, SIGMA, seed, counter)
    return es_estimators.truncation_estimate(rule, family, theta, eps, xi, tensors, particles,
                                             TRUNCATION, SIGMA, estimator, vectorized=vectorized)

  total = np.zeros(pairs)
  for m in range(TRUNCATIONS):
    out = truncation(particles, xi, tf.constant(m, tf.int64))
    particles, xi = out["particles"], out["xi"]
    total += out["pair_grads"]["log_learning_rate"].numpy()
  return total


class ExactGradientTest(tf.test.TestCase):

  def test_closed_form_matches_float64_autodiff(self):
    exact = closed_form_gradient(np.log(ETA))
    self.assertAllClose(autodiff_gradient(DiagonalQuadratic(), truncated=False), exact,
                        rtol=1e-10)


class UnbiasednessTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    family = DiagonalQuadratic()
    cls.exact = closed_form_gradient(np.log(ETA))
    cls.pes = es_estimates(family, "pes")
    cls.es = es_estimates(family, "es")
    cls.truncated_bptt = autodiff_gradient(family, truncated=True)

  def _mean_and_error(self, values):
    return float(np.mean(values)), float(np.std(values, ddof=1) / np.sqrt(len(values)))

  def test_pes_mean_matches_the_exact_gradient_within_its_confidence_interval(self):
    mean, error = self._mean_and_error(self.pes)
    # 99.7% interval; the Gaussian smoothing (sigma = 0.01) moves the target by far less.
    self.assertLess(abs(mean - self.exact), 3 * error, msg=(mean, error, self.exact))
    self.assertLess(error, 0.1 * abs(self.exact))  # and the interval is informative

  def test_truncated_es_is_biased(self):
    mean, error = self._mean_and_error(self.es)
    self.assertGreater(abs(mean - self.exact), 10 * error, msg=(mean, error, self.exact))
    self.assertGreater(abs(mean - self.exact), 0.2 * abs(self.exact))

  def test_truncated_bptt_is_biased(self):
    self.assertGreater(abs(self.truncated_bptt - self.exact), 0.2 * abs(self.exact),
                       msg=(self.truncated_bptt, self.exact))

  def test_truncated_es_estimates_truncated_bptt(self):
    # Both ignore the past's dependence on theta: they estimate the same biased quantity.
    mean, error = self._mean_and_error(self.es)
    self.assertLess(abs(mean - self.truncated_bptt), 4 * error)


class VectorisedTest(tf.test.TestCase):

  def test_vectorised_equals_a_loop_over_particles(self):
    family = DiagonalQuadratic()
    vectorised = es_estimates(family, "pes", vectorized=True, pairs=4, seed=5)
    loop = es_estimates(family, "pes", vectorized=False, pairs=4, seed=5)
    self.assertAllClose(vectorised, loop, rtol=1e-9, atol=1e-9)

  def test_vectorised_mlp_rule_on_mnist_equals_loop_for_one_meta_step(self):
    family = problems.get("digits_mlp", batch_size=16)
    rule = keras_l2o.rules.get("mlp", hidden_size=4)
    theta = rule.init_meta_params(0)
    tensors = es_estimators.stack([family.sample("train", i).tensors for i in range(3)])
    particles = es_estimators.init_particles(rule, family, es_estimators.tile(tensors, 2))
    xi = tf.nest.map_structure(lambda t: tf.zeros([3, *t.shape]), theta)
    eps = es_estimators.sample_perturbations(theta, 3, 0.01, 0, 0)
    outs = [tf.function(lambda v=v: es_estimators.truncation_estimate(
        rule, family, theta, eps, xi, tensors, particles, 4, 0.01, "pes", vectorized=v))()
            for v in (True, False)]
    self.assertAllClose(outs[0]["values"], outs[1]["values"], rtol=1e-5)
    self.assertAllClose(outs[0]["particles"].params, outs[1]["particles"].params, atol=1e-6)
    for a, b in zip(tf.nest.flatten(outs[0]["grad_sum"]), tf.nest.flatten(outs[1]["grad_sum"])):
      self.assertAllClose(a, b, atol=2e-3 * float(tf.reduce_max(tf.abs(b))))
    self.assertAllEqual(outs[0]["particles"].step, [4] * 6)

  def test_unknown_estimator_and_objective_are_named(self):
    with self.assertRaisesRegex(ValueError, r"`estimator` must be one of \['pes', 'es'\]. "
                                r"Received: estimator='nes'"):
      es_estimators.accumulate("nes", {}, {})
    family = DiagonalQuadratic()
    rule, theta = _rule_and_theta()
    tensors = tf.nest.map_structure(lambda t: t[None], family.sample("train", 0).tensors)
    particles = es_estimators.init_particles(rule, family, tensors, tf.float64)
    with self.assertRaisesRegex(ValueError, r"`objective` must be one of \['sum', "
                                r"'log_ratio'\]. Received: objective='mean'"):
      es_estimators.run_truncation(rule, family, tf.nest.map_structure(lambda t: t[None], theta),
                                   tensors, particles, 2, objective="mean")


if __name__ == "__main__":
  tf.test.main()
