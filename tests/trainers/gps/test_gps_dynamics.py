"""GPS dynamics fit (GPS.md 3.1, 3.4, section 5 item 4): GMM, prior regression, linearisation."""

import os

import numpy as np
from scipy import stats
import tensorflow as tf

from trainers.gps import dynamics
from trainers.gps import gmm as gmm_lib

DX, DU = 3, 2


def _system(seed, steps):
  """Time-varying A_t, B_t, c_t and noise covariances W_t."""
  rng = np.random.default_rng(seed)
  a = 0.5 * rng.normal(size=(steps, DX, DX))
  b = rng.normal(size=(steps, DX, DU))
  c = rng.normal(size=(steps, DX))
  root = 0.3 * rng.normal(size=(steps, DX, DX))
  w = root @ np.swapaxes(root, -1, -2) + 0.05 * np.eye(DX)
  return a, b, c, w


def _rollouts(system, num, seed):
  a, b, c, w = system
  rng = np.random.default_rng(seed)
  steps = a.shape[0] + 1
  x = np.zeros((num, steps, DX))
  u = rng.normal(size=(num, steps, DU))
  x[:, 0] = rng.normal(size=(num, DX)) + 1.
  for t in range(steps - 1):
    noise = rng.multivariate_normal(np.zeros(DX), w[t], size=num)
    x[:, t + 1] = x[:, t] @ a[t].T + u[:, t] @ b[t].T + c[t] + noise
  return x, u


def _condition(sigma, dz):
  """Numpy Gaussian conditioning: F, and W = S_yy - F S_zz F^T."""
  gain = np.linalg.solve(sigma[:dz, :dz], sigma[:dz, dz:]).T
  return gain, sigma[dz:, dz:] - gain @ sigma[:dz, :dz] @ gain.T


class GMMTest(tf.test.TestCase):

  def _two_clusters(self):
    rng = np.random.default_rng(4)
    first = rng.multivariate_normal([-4., 1.], [[1., .3], [.3, .5]], size=180)
    second = rng.multivariate_normal([5., -3.], [[.6, 0.], [0., 1.2]], size=420)
    return np.concatenate([first, second])

  def test_em_recovers_two_well_separated_clusters(self):
    points = self._two_clusters()
    gmm = gmm_lib.GMM(seed=3)
    gmm.fit(points, num_clusters=2)
    means, covs, log_weights = gmm.get_state()
    order = np.argsort(means[:, 0])
    # Errors of the estimates from the truth are sampling error only (~0.1).
    self.assertAllClose(means[order], [[-4., 1.], [5., -3.]], atol=0.2)
    self.assertAllClose(np.exp(log_weights[order]), [0.3, 0.7], atol=0.02)
    # At a fixed point of EM the cluster moments equal each cluster's sample moments.
    self.assertAllClose(means[order[0]], points[:180].mean(0), atol=1e-6)
    self.assertAllClose(covs[order[1]], np.cov(points[180:].T, bias=True) + 1e-6 * np.eye(2), atol=1e-6)

  def test_same_seed_same_fit(self):
    points = self._two_clusters()
    fits = [gmm_lib.GMM(seed=7) for _ in range(2)]
    for gmm in fits:
      gmm.fit(points, num_clusters=3)
    self.assertAllEqual(fits[0].means, fits[1].means)

  def test_responsibilities_and_moments_match_numpy(self):
    points = self._two_clusters()
    gmm = gmm_lib.GMM(seed=3)
    gmm.fit(points, num_clusters=3)
    means, covs, log_weights = gmm.get_state()
    query = np.array([[0., 0.], [-4., 1.], [5., -2.], [1., -1.]])
    dens = np.stack([np.exp(lw) * stats.multivariate_normal(m, c).pdf(query)
                     for m, c, lw in zip(means, covs, log_weights)], axis=-1)
    resp = dens / dens.sum(-1, keepdims=True)
    self.assertAllClose(gmm.responsibilities(query), resp, atol=1e-10)
    w = resp.mean(0)
    mu0 = w @ means
    phi = sum(w[k] * (covs[k] + np.outer(means[k] - mu0, means[k] - mu0)) for k in range(3))
    got_mu0, got_phi, m, n0 = gmm.moments(query, strength=2.5)
    self.assertAllClose(got_mu0, mu0, atol=1e-10)
    self.assertAllClose(got_phi, 2.5 * phi, atol=1e-9)
    self.assertEqual((float(m), float(n0)), (2.5, 2.5))
    # Batched moments (two groups of points) equal the separate ones.
    batched = gmm.moments(np.stack([query, query[::-1] + 1.]))
    self.assertAllClose(batched[1][1], gmm.moments(query[::-1] + 1.)[1], atol=1e-12)

  def test_errors(self):
    gmm = gmm_lib.GMM()
    with self.assertRaisesRegex(ValueError, "has not been fitted"):
      gmm.responsibilities(np.zeros((2, 2)))
    with self.assertRaisesRegex(ValueError, r"between 1 and the number of points \(3\)"):
      gmm.fit(np.zeros((3, 2)), num_clusters=4)
    with self.assertRaisesRegex(ValueError, "max_iterations=0"):
      gmm_lib.GMM(max_iterations=0)


class PriorRegressionTest(tf.test.TestCase):

  def test_matches_the_formula(self):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(7, 4)) @ rng.normal(size=(4, 4))
    mu0 = rng.normal(size=4)
    root = rng.normal(size=(4, 4))
    phi = root @ root.T
    m, n0, reg = 3.0, 5.0, 0.01
    gain, offset, noise = dynamics.prior_regression(points, 3, (mu0, phi, m, n0), reg)
    n = 7
    mean = points.mean(0)
    scatter = (points - mean).T @ (points - mean)
    sigma = (scatter + phi + n * m / (n + m) * np.outer(mean - mu0, mean - mu0)) / (n + n0)
    sigma[:3, :3] += reg * np.eye(3)
    want_gain, want_noise = _condition(sigma, 3)
    self.assertAllClose(gain, want_gain, atol=1e-12)
    self.assertAllClose(offset, mean[3:] - want_gain @ mean[:3], atol=1e-12)
    self.assertAllClose(noise, want_noise, atol=1e-12)

  def test_prior_strength_limits(self):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(20, 5))
    mu0 = rng.normal(size=5)
    root = rng.normal(size=(5, 5))
    phi = root @ root.T
    # Very strong prior: the regression of the prior's covariance Phi / m.
    gain, _, noise = dynamics.prior_regression(points, 3, (mu0, 1e10 * phi, 1e10, 1e10), 0.)
    want_gain, want_noise = _condition(phi, 3)
    self.assertAllClose(gain, want_gain, atol=1e-7)
    self.assertAllClose(noise, want_noise, atol=1e-7)
    # Vanishing prior: the plain least-squares regression.
    weak = dynamics.prior_regression(points, 3, (mu0, 1e-10 * phi, 1e-10, 1e-10), 0.)
    plain = dynamics.prior_regression(points, 3, None, 0.)
    for got, want in zip(weak, plain):
      self.assertAllClose(got, want, atol=1e-8)
    design = np.concatenate([points[:, :3], np.ones((20, 1))], axis=1)
    coef = np.linalg.lstsq(design, points[:, 3:], rcond=None)[0]
    self.assertAllClose(plain[0], coef[:3].T, atol=1e-10)
    self.assertAllClose(plain[1], coef[3], atol=1e-10)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"`input_dim` must be in \[1, 3\].*input_dim=4"):
      dynamics.prior_regression(np.zeros((5, 4)), 4)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "not positive definite"):
      dynamics.prior_regression(np.zeros((5, 4)), 2, None, 0.)


class FitDynamicsTest(tf.test.TestCase):

  def test_recovers_a_known_linear_system_under_a_weak_prior(self):
    system = _system(seed=0, steps=2)
    x, u = _rollouts(system, num=5000, seed=1)
    prior = dynamics.DynamicsPrior(max_clusters=4, max_samples=5000, seed=0)
    prior.update(x, u)
    self.assertEqual(prior.gmm.num_clusters, 4)
    fit = dynamics.fit_dynamics(x, u, prior, regularization=1e-6)
    a, b, c, w = system
    f_err = np.abs(fit.F.numpy()[:2] - np.concatenate([a, b], axis=-1)).max()
    c_err = np.abs(fit.f.numpy()[:2] - c).max()
    w_err = np.abs(fit.W.numpy()[:2] - w).max()
    # Measured: 0.0182, 0.0160, 0.0152 (the sampling error of 5,000 samples;
    # the same to 1e-4 without a prior).
    self.assertLess(f_err, 0.05)
    self.assertLess(c_err, 0.05)
    self.assertLess(w_err, 0.04)
    # The last step has no successor: zeros.
    self.assertAllEqual(fit.F[2], np.zeros((DX, DX + DU)))
    # Measured: 0.0119 and 0.0331.
    self.assertAllClose(fit.x0_mean, np.ones(DX), atol=0.04)
    self.assertAllClose(fit.x0_cov, np.eye(DX), atol=0.08)

  def test_very_strong_prior_returns_the_prior_regression(self):
    prior = dynamics.DynamicsPrior(max_clusters=3, max_samples=400, strength=1e9, seed=2)
    prior.update(*_rollouts(_system(seed=0, steps=2), num=400, seed=3))
    x, u = _rollouts(_system(seed=5, steps=2), num=30, seed=4)  # a different system
    fit = dynamics.fit_dynamics(x, u, prior, regularization=0.)
    points = np.concatenate([x[:, :-1], u[:, :-1], x[:, 1:]], axis=-1)
    for t in range(2):
      _, phi, m, _ = prior.moments(points[:, t])
      want_gain, want_noise = _condition(phi.numpy() / float(m), DX + DU)
      self.assertAllClose(fit.F[t], want_gain, atol=1e-6)
      self.assertAllClose(fit.W[t], want_noise, atol=1e-6)
      self.assertAllClose(fit.f[t], points[:, t, DX + DU:].mean(0) - want_gain @ points[:, t, :DX + DU].mean(0),
                          atol=1e-6)
    # ... which is far from the data's own least-squares fit (measured 1.28).
    own = dynamics.fit_dynamics(x, u, None)
    self.assertGreater(np.abs(fit.F.numpy()[:2] - own.F.numpy()[:2]).max(), 0.5)

  def test_prior_checkpoint_round_trip(self):
    x, u = _rollouts(_system(seed=0, steps=2), num=60, seed=3)
    prior = dynamics.DynamicsPrior(max_clusters=3, max_samples=40, seed=1)
    prior.update(x[:30], u[:30])
    path = tf.train.Checkpoint(prior=prior).write(os.path.join(self.get_temp_dir(), "ckpt"))
    restored = dynamics.DynamicsPrior(max_clusters=3, max_samples=40, seed=1)
    tf.train.Checkpoint(prior=restored).read(path).assert_consumed()
    self.assertAllEqual(restored.buffer, prior.buffer)
    # Resuming continues exactly: the next warm-started refit agrees bit for bit.
    prior.update(x[30:], u[30:])
    restored.update(x[30:], u[30:])
    self.assertEqual(restored.buffer.numpy().shape[0], 40)
    self.assertAllEqual(restored.gmm.means, prior.gmm.means)
    self.assertAllEqual(dynamics.fit_dynamics(x, u, restored).F, dynamics.fit_dynamics(x, u, prior).F)

  def test_batched_over_groups_equals_separate_fits(self):
    x, u = _rollouts(_system(seed=0, steps=3), num=40, seed=8)
    xs, us = x.reshape(2, 20, 4, DX), u.reshape(2, 20, 4, DU)
    batched = dynamics.fit_dynamics(xs, us)
    for g in range(2):
      single = dynamics.fit_dynamics(xs[g], us[g])
      for got, want in zip(batched, single):
        self.assertAllClose(got[g], want, atol=1e-10)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"must agree on all but the last dimension.*\(4, 2, 2\)"):
      dynamics.fit_dynamics(np.zeros((4, 3, 3)), np.zeros((4, 2, 2)))
    with self.assertRaisesRegex(ValueError, "at least 2 time steps"):
      dynamics.fit_dynamics(np.zeros((4, 1, 3)), np.zeros((4, 1, 2)))
    with self.assertRaisesRegex(ValueError, "max_clusters=0"):
      dynamics.DynamicsPrior(max_clusters=0)


class LinearizePolicyTest(tf.test.TestCase):

  def test_recovers_a_linear_policy(self):
    rng = np.random.default_rng(6)
    steps, num = 3, 40
    gains = rng.normal(size=(steps, DU, DX))
    offsets = rng.normal(size=(steps, DU))
    x = rng.normal(size=(num, steps, DX))
    means = np.einsum("tux,ntx->ntu", gains, x) + offsets
    var = np.array([0.1, 0.2])
    lin = dynamics.linearize_policy(x, means, var, regularization=0.)
    self.assertAllClose(lin.K, gains, atol=1e-10)
    self.assertAllClose(lin.k, offsets, atol=1e-10)
    self.assertAllClose(lin.G, np.broadcast_to(np.diag(var), (steps, DU, DU)), atol=1e-10)

  def test_with_a_policy_prior_and_noise(self):
    rng = np.random.default_rng(7)
    steps, num = 2, 500
    x = rng.normal(size=(num, steps, DX))
    means = x[..., :DU] * 2. - 1. + 0.1 * rng.normal(size=(num, steps, DU))
    prior = dynamics.PolicyPrior(max_clusters=2, max_samples=num, seed=0)
    prior.update(x, means)
    lin = dynamics.linearize_policy(x, means, np.zeros(DU), prior)
    want = np.zeros((DU, DX))
    want[:, :DU] = 2. * np.eye(DU)
    # Measured max errors: 0.0093 (K), 0.0040 (k), 0.0013 (G = residual covariance).
    self.assertAllClose(lin.K, np.broadcast_to(want, (steps, DU, DX)), atol=0.02)
    self.assertAllClose(lin.k, -np.ones((steps, DU)), atol=0.02)
    self.assertAllClose(lin.G, np.broadcast_to(0.01 * np.eye(DU), (steps, DU, DU)), atol=0.004)


if __name__ == "__main__":
  tf.test.main()
