"""GPS Gaussians: policy KL closed forms, forward marginals and expected cost vs Monte Carlo."""


import numpy as np
import tensorflow as tf

from trainers.gps import gaussians
from trainers.gps import types

from tests.trainers.gps import gps_lqg_testing as lqg

HORIZON, D_X, D_U = 5, 3, 2
NUM_SAMPLES = 20000
# Bound on |Monte Carlo - closed form| in standard errors. A single scalar uses 3;
# the max over the ~50-150 entries of a mean vector / covariance uses 4.
Z_SCALAR, Z_MAX = 3.0, 4.0


def _numpy_kl(mean0, cov0, mean1, cov1):
  """KL(N(mean0, cov0) || N(mean1, cov1)), textbook formula in numpy."""
  dim = mean0.shape[-1]
  inv1 = np.linalg.inv(cov1)
  diff = mean1 - mean0
  return 0.5 * (np.trace(inv1 @ cov0) + diff @ inv1 @ diff - dim
                + np.linalg.slogdet(cov1)[1] - np.linalg.slogdet(cov0)[1])


def _system(seed):
  rng = np.random.default_rng(seed)
  new = lqg.random_policy(rng, HORIZON, D_X, D_U)
  old = lqg.random_policy(rng, HORIZON, D_X, D_U)
  dynamics = lqg.random_dynamics(rng, HORIZON, D_X, D_U)
  cost = lqg.random_cost(rng, HORIZON, D_X, D_U)
  return rng, new, old, dynamics, cost


class PolicyKlTest(tf.test.TestCase):

  def test_known_one_dimensional_value(self):
    # KL(N(0, 1) || N(1, 2)) = 1/2 (1/2 + 1/2 - 1 + ln 2) = ln(2) / 2.
    new = types.LinearGaussianPolicy(K=np.zeros([1, 1, 1]), k=np.zeros([1, 1]),
                                     G=np.ones([1, 1, 1]))
    old = types.LinearGaussianPolicy(K=np.zeros([1, 1, 1]), k=np.ones([1, 1]),
                                     G=2.0 * np.ones([1, 1, 1]))
    kl = gaussians.policy_kl(new, old, np.zeros([1, 1]), np.eye(1)[None])
    self.assertAllClose(kl, [0.5 * np.log(2.0)], atol=1e-14)

  def test_fixed_state_matches_numpy_closed_form(self):
    rng, new, old, _, _ = _system(0)
    x = rng.normal(size=(HORIZON, D_X))
    kl = gaussians.policy_kl(new, old, x, np.zeros([HORIZON, D_X, D_X]))
    expected = [_numpy_kl(new.K[t] @ x[t] + new.k[t], new.G[t],
                          old.K[t] @ x[t] + old.k[t], old.G[t])
                for t in range(HORIZON)]
    self.assertAllClose(kl, expected, atol=1e-12)
    self.assertGreater(float(np.min(expected)), 0.01)

  def test_self_kl_is_zero(self):
    rng, new, _, dynamics, _ = _system(1)
    kl = gaussians.policy_kl(new, new, rng.normal(size=(HORIZON, D_X)), dynamics.W)
    self.assertAllClose(kl, np.zeros(HORIZON), atol=1e-12)
    self.assertAllClose(gaussians.trajectory_kl(new, new, dynamics), 0.0, atol=1e-12)

  def test_state_spread_adds_gain_trace_term(self):
    # Averaging the fixed-state closed form over x ~ N(m, S) by Monte Carlo.
    rng, new, old, dynamics, _ = _system(2)
    mean, cov = dynamics.x0_mean, dynamics.x0_cov
    one_step = lambda p: types.LinearGaussianPolicy(K=p.K[:1], k=p.k[:1], G=p.G[:1])
    kl = float(gaussians.policy_kl(one_step(new), one_step(old), mean[None], cov[None])[0])
    xs = rng.multivariate_normal(mean, cov, size=4000)
    samples = np.array([_numpy_kl(new.K[0] @ x + new.k[0], new.G[0], old.K[0] @ x + old.k[0],
                                  old.G[0]) for x in xs])
    lqg.assert_within_standard_errors(self, samples.mean(), samples.std() / np.sqrt(len(xs)), kl,
                                      Z_SCALAR, "E_x KL")
    at_mean = _numpy_kl(new.K[0] @ mean + new.k[0], new.G[0], old.K[0] @ mean + old.k[0], old.G[0])
    self.assertGreater(kl - at_mean, 0.05)  # the trace term matters here

  def test_rejects_mismatched_policies(self):
    _, new, _, _, _ = _system(3)
    other = lqg.random_policy(np.random.default_rng(0), HORIZON, D_X + 1, D_U)
    with self.assertRaisesRegex(ValueError, "equal T, dU, dX"):
      gaussians.policy_kl(new, other, np.zeros([HORIZON, D_X]), np.zeros([HORIZON, D_X, D_X]))


class TrajectoryTest(tf.test.TestCase):

  def test_forward_marginals_match_monte_carlo(self):
    rng, new, _, dynamics, _ = _system(4)
    marginals = lqg.to_numpy(gaussians.forward_marginals(new, dynamics))
    x, u = lqg.rollouts(rng, new, dynamics, NUM_SAMPLES)
    xu = np.concatenate([x, u], axis=-1)  # [N, T, dX + dU]
    self.assertAllClose(marginals.x_mean, marginals.xu_mean[..., :D_X], atol=0.0)
    self.assertAllClose(marginals.x_cov, marginals.xu_cov[..., :D_X, :D_X], atol=0.0)
    mean_se = xu.std(axis=0) / np.sqrt(NUM_SAMPLES)
    lqg.assert_within_standard_errors(self, xu.mean(axis=0), mean_se, marginals.xu_mean, Z_MAX,
                                      "means")
    centred = xu - xu.mean(axis=0)
    products = centred[..., :, None] * centred[..., None, :]  # [N, T, d, d]
    cov_se = products.std(axis=0) / np.sqrt(NUM_SAMPLES)
    lqg.assert_within_standard_errors(self, products.mean(axis=0), cov_se, marginals.xu_cov, Z_MAX,
                                      "covariances")
    # The initial marginal is the given one, exactly.
    self.assertAllClose(marginals.x_mean[0], dynamics.x0_mean, atol=0.0)
    self.assertAllClose(marginals.x_cov[0], dynamics.x0_cov, atol=1e-15)

  def test_trajectory_kl_matches_monte_carlo(self):
    rng, new, old, dynamics, _ = _system(5)
    kl = float(gaussians.trajectory_kl(new, old, dynamics))
    x, u = lqg.rollouts(rng, new, dynamics, NUM_SAMPLES)
    log_ratio = np.zeros(NUM_SAMPLES)
    for t in range(HORIZON):
      log_ratio += (lqg.gaussian_log_density(u[:, t], x[:, t] @ new.K[t].T + new.k[t], new.G[t])
                    - lqg.gaussian_log_density(u[:, t], x[:, t] @ old.K[t].T + old.k[t], old.G[t]))
    se = log_ratio.std() / np.sqrt(NUM_SAMPLES)
    lqg.assert_within_standard_errors(self, log_ratio.mean(), se, kl, Z_SCALAR, "trajectory KL")
    self.assertGreater(kl, 20 * se)  # a test that a zero KL could not pass

  def test_expected_cost_matches_monte_carlo(self):
    rng, new, _, dynamics, cost = _system(6)
    expected = float(gaussians.expected_cost(new, dynamics, cost))
    x, u = lqg.rollouts(rng, new, dynamics, NUM_SAMPLES)
    xu = np.concatenate([x, u], axis=-1)
    per_sample = (0.5 * np.einsum("nti,tij,ntj->n", xu, cost.Cm, xu)
                  + np.einsum("nti,ti->n", xu, cost.cv) + cost.cc.sum())
    se = per_sample.std() / np.sqrt(NUM_SAMPLES)
    lqg.assert_within_standard_errors(self, per_sample.mean(), se, expected, Z_SCALAR,
                                      "expected cost")

  def test_batch_entries_equal_separate_calls(self):
    rng = np.random.default_rng(7)
    new = lqg.random_policy(rng, HORIZON, D_X, D_U, batch=(3,))
    old = lqg.random_policy(rng, HORIZON, D_X, D_U, batch=(3,))
    dynamics = lqg.random_dynamics(rng, HORIZON, D_X, D_U, batch=(3,))
    batched = gaussians.trajectory_kl(new, old, dynamics)
    take = lambda s, i: tf.nest.map_structure(lambda a: a[i], s)
    separate = [float(gaussians.trajectory_kl(take(new, i), take(old, i), take(dynamics, i)))
                for i in range(3)]
    self.assertAllClose(batched, separate, rtol=1e-12)
    self.assertGreater(min(separate), 0.1)

  def test_rejects_mismatched_dynamics(self):
    _, new, _, _, _ = _system(8)
    dynamics = lqg.random_dynamics(np.random.default_rng(0), HORIZON, D_X + 1, D_U)
    with self.assertRaisesRegex(ValueError, r"Dynamics F must be \[\.\.\., T, dX, dX \+ dU\]"):
      gaussians.forward_marginals(new, dynamics)


if __name__ == "__main__":
  tf.test.main()
