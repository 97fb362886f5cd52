"""GPS modified LQR: Riccati gains, the eta/nu limits, eta increase, eta search, batching."""


import numpy as np
import tensorflow as tf

from trainers.gps import gaussians
from trainers.gps import lqr
from trainers.gps import types

from tests.trainers.gps import gps_lqg_testing as lqg

HORIZON, D_X, D_U = 6, 4, 2


def _numpy_riccati(cost, dynamics):
  """Finite-horizon LQR in the A, B form: returns gains K [T, dU, dX], k [T, dU], Q_uu^-1."""
  horizon, d_x = dynamics.f.shape
  value_m, value_v = np.zeros((d_x, d_x)), np.zeros(d_x)
  gains, offsets, inverses = [], [], []
  for t in reversed(range(horizon)):
    a, b, drift = dynamics.F[t, :, :d_x], dynamics.F[t, :, d_x:], dynamics.f[t]
    c = cost.Cm[t]
    r = c[d_x:, d_x:] + b.T @ value_m @ b
    n = c[d_x:, :d_x] + b.T @ value_m @ a
    s = c[:d_x, :d_x] + a.T @ value_m @ a
    future = value_m @ drift + value_v
    g_u = cost.cv[t, d_x:] + b.T @ future
    g_x = cost.cv[t, :d_x] + a.T @ future
    gain = -np.linalg.solve(r, n)
    offset = -np.linalg.solve(r, g_u)
    value_m = s + n.T @ gain
    value_m = 0.5 * (value_m + value_m.T)
    value_v = g_x + n.T @ offset
    gains.append(gain)
    offsets.append(offset)
    inverses.append(np.linalg.inv(r))
  return np.stack(gains[::-1]), np.stack(offsets[::-1]), np.stack(inverses[::-1])


def _open_loop_optimum(cost, dynamics, x0):
  """argmin over u_0..u_{T-1} of the noiseless total cost from x0, as one dense QP."""
  horizon, d_x = dynamics.f.shape
  d_u = dynamics.F.shape[-1] - d_x
  n_u = horizon * d_u
  # x_t = P_t [1; x0; U] (affine in the stacked actions U), y_t = [x_t; u_t] likewise.
  x_map = np.zeros((d_x, 1 + d_x + n_u))
  x_map[:, 1:1 + d_x] = np.eye(d_x)
  hessian, linear = np.zeros((n_u, n_u)), np.zeros(n_u)
  for t in range(horizon):
    u_map = np.zeros((d_u, 1 + d_x + n_u))
    u_map[:, 1 + d_x + t * d_u:1 + d_x + (t + 1) * d_u] = np.eye(d_u)
    y_map = np.concatenate([x_map, u_map])
    const = y_map[:, 0] + y_map[:, 1:1 + d_x] @ x0
    var = y_map[:, 1 + d_x:]
    hessian += var.T @ cost.Cm[t] @ var
    linear += var.T @ (cost.Cm[t] @ const + cost.cv[t])
    x_map = dynamics.F[t] @ y_map
    x_map[:, 0] += dynamics.f[t]
  return np.linalg.solve(hessian, -linear).reshape(horizon, d_u)


def _problem(seed, batch=(), d_x=D_X, d_u=D_U, horizon=HORIZON):
  rng = np.random.default_rng(seed)
  return (rng, lqg.random_cost(rng, horizon, d_x, d_u, batch),
          lqg.random_dynamics(rng, horizon, d_x, d_u, batch),
          lqg.random_policy(rng, horizon, d_x, d_u, batch=batch),
          lqg.random_policy(rng, horizon, d_x, d_u, batch=batch))


class BackwardPassTest(tf.test.TestCase):

  def test_plain_pass_matches_numpy_riccati(self):
    _, cost, dynamics, _, _ = _problem(0)
    policy, ok = lqr.backward_pass(cost, dynamics, None, None, None, None, 0.0)
    self.assertTrue(bool(ok))
    gains, offsets, inverses = _numpy_riccati(cost, dynamics)
    self.assertAllClose(policy.K, gains, atol=1e-10, rtol=1e-10)
    self.assertAllClose(policy.k, offsets, atol=1e-10, rtol=1e-10)
    self.assertAllClose(policy.G, inverses, atol=1e-10, rtol=1e-10)
    self.assertGreater(float(np.abs(gains[0]).max()), 0.05)  # feedback is not trivial

  def test_plain_pass_mean_rollout_is_the_open_loop_optimum(self):
    _, cost, dynamics, _, _ = _problem(1)
    policy = lqg.to_numpy(lqr.backward_pass(cost, dynamics, None, None, None, None, 0.0)[0])
    x = dynamics.x0_mean
    actions = []
    for t in range(HORIZON):
      actions.append(policy.K[t] @ x + policy.k[t])
      x = dynamics.F[t] @ np.concatenate([x, actions[-1]]) + dynamics.f[t]
    self.assertAllClose(np.stack(actions), _open_loop_optimum(cost, dynamics, dynamics.x0_mean),
                        atol=1e-9)

  def test_large_eta_returns_previous_policy(self):
    _, cost, dynamics, prev, pi_lin = _problem(2)
    nu = np.zeros(HORIZON)
    lam = np.ones((HORIZON, D_U))
    policy, ok = lqr.backward_pass(cost, dynamics, prev, pi_lin, lam, nu, 1e12)
    self.assertTrue(bool(ok))
    self.assertAllClose(policy.K, prev.K, atol=1e-9)
    self.assertAllClose(policy.k, prev.k, atol=1e-9)
    self.assertAllClose(policy.G, prev.G, atol=1e-9)

  def test_large_nu_returns_linearised_global_policy(self):
    _, cost, dynamics, prev, pi_lin = _problem(3)
    nu = np.full(HORIZON, 1e12)
    policy, ok = lqr.backward_pass(cost, dynamics, prev, pi_lin, np.ones((HORIZON, D_U)), nu, 1.0)
    self.assertTrue(bool(ok))
    self.assertAllClose(policy.K, pi_lin.K, atol=1e-9)
    self.assertAllClose(policy.k, pi_lin.k, atol=1e-9)
    self.assertAllClose(policy.G, pi_lin.G, atol=1e-9)

  def test_lambda_shifts_last_offset_by_g_lambda_over_scale(self):
    # At t = T-1, k = -Q_uu^-1 (c_u - lambda) / s, so lambda adds G lambda / s with s = eta + nu.
    _, cost, dynamics, prev, pi_lin = _problem(4)
    lam = np.zeros((HORIZON, D_U))
    lam[-1] = [0.7, -1.3]
    nu = np.full(HORIZON, 0.3)
    eta = 0.7  # not exact in float32: the Python float must reach float64 unrounded
    base, _ = lqr.backward_pass(cost, dynamics, prev, pi_lin, np.zeros_like(lam), nu, eta)
    shifted, _ = lqr.backward_pass(cost, dynamics, prev, pi_lin, lam, nu, eta)
    expected = np.asarray(base.G)[-1] @ lam[-1] / (eta + nu[-1])
    self.assertAllClose(np.asarray(shifted.k)[-1] - np.asarray(base.k)[-1], expected, atol=1e-12)
    self.assertAllClose(shifted.K, base.K, atol=1e-12)

  def test_nonconvex_cost_reports_failed_cholesky(self):
    _, cost, dynamics, _, _ = _problem(5)
    cost = cost._replace(Cm=cost.Cm - 10.0 * np.eye(D_X + D_U))
    _, ok = lqr.backward_pass(cost, dynamics, None, None, None, None, 0.0)
    self.assertFalse(bool(ok))

  def test_rejects_bad_shapes(self):
    _, cost, dynamics, prev, _ = _problem(6)
    with self.assertRaisesRegex(ValueError, r"nu must be \[\.\.\., T\] = \[\.\.\., 6\]; received "
                                r"shape \(5,\)"):
      lqr.backward_pass(cost, dynamics, prev, None, None, np.zeros(5), 1.0)
    with self.assertRaisesRegex(ValueError, r"lam must be \[\.\.\., T, dU\]"):
      lqr.backward_pass(cost, dynamics, prev, None, np.zeros((HORIZON, 3)), None, 1.0)


class EtaIncreaseTest(tf.test.TestCase):

  def _scalar_problem(self):
    # One step, dX = dU = 1, c = (x^2 - u^2)/2: Q_uu = (eta - 1)/eta, PD iff eta > 1 (G_prev = 1).
    cost = types.QuadraticCost(Cm=np.diag([1.0, -1.0])[None], cv=np.zeros([1, 2]), cc=np.zeros(1))
    dynamics = types.LinearDynamics(F=np.ones([1, 1, 2]), f=np.zeros([1, 1]),
                                    W=np.ones([1, 1, 1]), x0_mean=np.zeros(1),
                                    x0_cov=np.ones([1, 1]))
    prev = types.LinearGaussianPolicy(K=np.zeros([1, 1, 1]), k=np.zeros([1, 1]),
                                      G=np.ones([1, 1, 1]))
    return cost, dynamics, prev

  def test_eta_doubling_increments_until_positive_definite(self):
    cost, dynamics, prev = self._scalar_problem()
    policy, eta = lqr.solve_with_eta_increase(cost, dynamics, prev, None, None, None, 0.0)
    # eta_n = 1e-4 (2^n - 1): n = 13 gives 0.8191 (fails), n = 14 gives 1.6383.
    self.assertAllClose(eta, 1e-4 * (2**14 - 1), rtol=1e-12)
    self.assertAllClose(policy.G, [[[eta / (eta - 1.0)]]], rtol=1e-12)

  def test_gives_up_at_max_eta_with_clear_error(self):
    cost, dynamics, _ = self._scalar_problem()
    with self.assertRaisesRegex(FloatingPointError, r"not positive definite even at eta=.* >= "
                                r"max_eta=1e\+16"):
      lqr.solve_with_eta_increase(cost, dynamics, None, None, None, None, 0.0)


class EtaSearchTest(tf.test.TestCase):

  def test_kl_meets_budget_on_feasible_problem(self):
    _, cost, dynamics, prev, pi_lin = _problem(7)
    epsilon = HORIZON * 0.2
    result = lqr.eta_search(cost, dynamics, prev, pi_lin, np.zeros((HORIZON, D_U)),
                            np.full(HORIZON, 0.01), epsilon, eta0=1.0)
    self.assertLess(abs(float(result.kl) - epsilon), 0.1 * epsilon)
    self.assertAllClose(gaussians.trajectory_kl(result.policy, prev, dynamics), result.kl,
                        rtol=1e-12)
    self.assertBetween(int(result.iterations), 2, 50)
    # The unconstrained optimum (tiny eta) is far outside the budget: the constraint is active.
    loose = lqr.backward_pass(cost, dynamics, prev, pi_lin, None, np.full(HORIZON, 0.01), 1e-8)[0]
    self.assertGreater(float(gaussians.trajectory_kl(loose, prev, dynamics)), 3 * epsilon)

  def test_slack_constraint_stops_at_min_eta(self):
    _, cost, dynamics, prev, _ = _problem(8)
    result = lqr.eta_search(cost, dynamics, prev, None, None, None, epsilon=1e6, eta0=1.0,
                            min_eta=1e-3)
    self.assertAllClose(result.eta, 1e-3, rtol=1e-12)
    self.assertLess(float(result.kl), 1e6)

  def test_rejects_bad_arguments(self):
    _, cost, dynamics, prev, _ = _problem(9)
    with self.assertRaisesRegex(ValueError, "eta_search needs prev_policy"):
      lqr.eta_search(cost, dynamics, None, None, None, None, 1.0, 1.0)
    with self.assertRaisesRegex(ValueError, r"epsilon must be > 0; received -1.0"):
      lqr.eta_search(cost, dynamics, prev, None, None, None, -1.0, 1.0)
    with self.assertRaisesRegex(ValueError, r"Need 0 < min_eta < max_eta; received min_eta=2.0"):
      lqr.eta_search(cost, dynamics, prev, None, None, None, 1.0, 1.0, min_eta=2.0, max_eta=1.0)


def _take(structure, index):
  return tf.nest.map_structure(lambda a: a[index], structure)


def _block_indices(group, groups, d_x):
  """Positions of group `group`'s [x; u] entries inside the assembled [x_1..x_G; u_1..u_G]."""
  return list(range(group * d_x, (group + 1) * d_x)) + [groups * d_x + group]


def _assemble_block_diagonal(cost, dynamics, policies, d_x):
  """Per-group systems [G, ...] (action size 1) -> one system with state G*dX and action G."""
  groups, horizon = cost.cc.shape
  full = groups * (d_x + 1)
  cm, cv = np.zeros((horizon, full, full)), np.zeros((horizon, full))
  f_full = np.zeros((horizon, groups * d_x, full))
  drift, noise = np.zeros((horizon, groups * d_x)), np.zeros((horizon, groups * d_x, groups * d_x))
  x0_mean, x0_cov = np.zeros(groups * d_x), np.zeros((groups * d_x, groups * d_x))
  gains = [np.zeros((horizon, groups, groups * d_x)) for _ in policies]
  offsets = [np.zeros((horizon, groups)) for _ in policies]
  covs = [np.zeros((horizon, groups, groups)) for _ in policies]
  for g in range(groups):
    idx = _block_indices(g, groups, d_x)
    xs = idx[:d_x]
    cm[np.ix_(range(horizon), idx, idx)] = cost.Cm[g]
    cv[:, idx] = cost.cv[g]
    f_full[np.ix_(range(horizon), xs, idx)] = dynamics.F[g]
    drift[:, xs] = dynamics.f[g]
    noise[np.ix_(range(horizon), xs, xs)] = dynamics.W[g]
    x0_mean[xs] = dynamics.x0_mean[g]
    x0_cov[np.ix_(xs, xs)] = dynamics.x0_cov[g]
    for policy, gain, offset, cov in zip(policies, gains, offsets, covs):
      gain[:, g, xs] = policy.K[g][:, 0, :]
      offset[:, g] = policy.k[g][:, 0]
      cov[:, g, g] = policy.G[g][:, 0, 0]
  return (types.QuadraticCost(Cm=cm, cv=cv, cc=cost.cc.sum(axis=0)),
          types.LinearDynamics(F=f_full, f=drift, W=noise, x0_mean=x0_mean, x0_cov=x0_cov),
          [types.LinearGaussianPolicy(K=a, k=b, G=c) for a, b, c in zip(gains, offsets, covs)])


class BatchedGroupsTest(tf.test.TestCase):
  """GPS.md section 2: per-group LQRs batched == separately == one block-diagonal LQR."""

  GROUPS, D_X, HORIZON = 3, 3, 5

  def _groups(self, seed):
    return _problem(seed, batch=(self.GROUPS,), d_x=self.D_X, d_u=1, horizon=self.HORIZON)

  def test_batched_backward_equals_separate_and_block_diagonal(self):
    rng, cost, dynamics, prev, pi_lin = self._groups(10)
    lam = rng.normal(size=(self.GROUPS, self.HORIZON, 1))
    nu = np.linspace(0.1, 0.5, self.HORIZON)  # shared by the groups (the full system has one nu_t)
    eta = 0.7
    batched, ok = lqr.backward_pass(cost, dynamics, prev, pi_lin, lam, nu, eta)
    self.assertAllEqual(ok, [True] * self.GROUPS)
    for g in range(self.GROUPS):
      alone, _ = lqr.backward_pass(_take(cost, g), _take(dynamics, g), _take(prev, g),
                                   _take(pi_lin, g), lam[g], nu, eta)
      for got, want in zip(_take(batched, g), alone):
        self.assertAllClose(got, want, atol=1e-12, rtol=1e-12)

    full_cost, full_dynamics, (full_prev, full_pi) = _assemble_block_diagonal(
        cost, dynamics, [prev, pi_lin], self.D_X)
    full_lam = np.transpose(lam[..., 0])  # [T, G]
    full, full_ok = lqr.backward_pass(full_cost, full_dynamics, full_prev, full_pi, full_lam, nu,
                                      eta)
    self.assertTrue(bool(full_ok))
    _, _, (expected,) = _assemble_block_diagonal(cost, dynamics, [lqg.to_numpy(batched)], self.D_X)
    self.assertAllClose(full.K, expected.K, atol=1e-10)
    self.assertAllClose(full.k, expected.k, atol=1e-10)
    self.assertAllClose(full.G, expected.G, atol=1e-10)
    self.assertGreater(float(np.abs(expected.K).max()), 0.05)
    # The trajectory KL of the assembled system is the sum over the groups.
    self.assertAllClose(gaussians.trajectory_kl(full, full_prev, full_dynamics),
                        np.sum(gaussians.trajectory_kl(batched, prev, dynamics)), rtol=1e-10)

  def test_batched_eta_search_equals_separate_searches(self):
    rng, cost, dynamics, prev, pi_lin = self._groups(11)
    lam = 0.1 * rng.normal(size=(self.GROUPS, self.HORIZON, 1))
    nu = np.array([[0.01], [0.1], [1.0]]) * np.ones(self.HORIZON)
    epsilon = np.array([0.5, 1.0, 2.0])
    batched = lqr.eta_search(cost, dynamics, prev, pi_lin, lam, nu, epsilon, eta0=1.0)
    self.assertTrue(np.all(np.abs(batched.kl - epsilon) < 0.1 * epsilon))
    for g in range(self.GROUPS):
      alone = lqr.eta_search(_take(cost, g), _take(dynamics, g), _take(prev, g), _take(pi_lin, g),
                             lam[g], nu[g], epsilon[g], eta0=1.0)
      self.assertAllClose(batched.eta[g], alone.eta, rtol=1e-12)
      self.assertEqual(batched.iterations[g], alone.iterations)
      self.assertAllClose(batched.kl[g], alone.kl, rtol=1e-10)
      for got, want in zip(_take(batched.policy, g), alone.policy):
        self.assertAllClose(got, want, atol=1e-12, rtol=1e-12)
    self.assertLen(set(np.round(batched.eta, 12)), self.GROUPS)  # each group has its own eta


if __name__ == "__main__":
  tf.test.main()
