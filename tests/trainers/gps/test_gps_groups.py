"""Coordinate-group GPS (GPS.md section 2): block-diagonal LQR, permutations, features, cost."""

import numpy as np
import scipy.linalg
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from keras_l2o.rules import coordinate_policy
from tests.trainers.gps import gps_lqg_testing as lqg
from trainers.gps import coordinate_groups as groups_lib
from trainers.gps import gaussians
from trainers.gps import lqr
from trainers.gps import types


def _block_diag_time(blocks, n):
  """[T, a, b] per-coordinate blocks -> [T, n a, n b] block diagonal."""
  return np.stack([scipy.linalg.block_diag(*([b] * n)) for b in blocks])


def _assemble(cost, dyn, policy, pi_lin, lam, n):
  """The full system of n coordinates that each follow the per-coordinate LQG."""
  d_x = dyn.F.shape[-2]
  # Full state X = [s_1; ...; s_n], action U = [u_1; ...; u_n].
  def split_y(matrix):  # [T, dX + dU, dX + dU] -> blocks
    return (matrix[:, :d_x, :d_x], matrix[:, :d_x, d_x:], matrix[:, d_x:, :d_x],
            matrix[:, d_x:, d_x:])

  xx, xu, ux, uu = split_y(cost.Cm)
  cm = np.concatenate([
      np.concatenate([_block_diag_time(xx, n), _block_diag_time(xu, n)], axis=2),
      np.concatenate([_block_diag_time(ux, n), _block_diag_time(uu, n)], axis=2)], axis=1)
  cv = np.concatenate([np.tile(cost.cv[:, :d_x], (1, n)), np.tile(cost.cv[:, d_x:], (1, n))], 1)
  full_cost = types.QuadraticCost(cm, cv, n * cost.cc)
  a, b = dyn.F[:, :, :d_x], dyn.F[:, :, d_x:]
  full_dyn = types.LinearDynamics(
      np.concatenate([_block_diag_time(a, n), _block_diag_time(b, n)], axis=2),
      np.tile(dyn.f, (1, n)), _block_diag_time(dyn.W, n), np.tile(dyn.x0_mean, n),
      scipy.linalg.block_diag(*([dyn.x0_cov] * n)))

  def full_policy(p):
    return types.LinearGaussianPolicy(_block_diag_time(p.K, n), np.tile(p.k, (1, n)),
                                      _block_diag_time(p.G, n))

  return full_cost, full_dyn, full_policy(policy), full_policy(pi_lin), np.tile(lam, (1, n))


class BlockDiagonalLQRTest(tf.test.TestCase):

  def test_per_group_solution_equals_the_full_block_diagonal_lqr(self):
    rng = np.random.default_rng(3)
    horizon, d_x, d_u, n = 6, 2, 1, 3
    cost = lqg.random_cost(rng, horizon, d_x, d_u)
    dyn = lqg.random_dynamics(rng, horizon, d_x, d_u)
    prev = lqg.random_policy(rng, horizon, d_x, d_u)
    pi_lin = lqg.random_policy(rng, horizon, d_x, d_u)
    lam = rng.normal(size=(horizon, d_u))
    nu = np.abs(rng.normal(size=horizon)) + 0.1
    eta = 0.7
    small, ok = lqr.backward_pass(*lqg.to_tensors((cost, dyn, prev, pi_lin)), lam, nu, eta)
    self.assertTrue(bool(ok))
    full_args = _assemble(cost, dyn, prev, pi_lin, lam, n)
    full, ok_full = lqr.backward_pass(*lqg.to_tensors(full_args[:4]), full_args[4], nu, eta)
    self.assertTrue(bool(ok_full))
    self.assertAllClose(full.K, _block_diag_time(small.K.numpy(), n), atol=1e-10)
    self.assertAllClose(full.k, np.tile(small.k.numpy(), (1, n)), atol=1e-10)
    self.assertAllClose(full.G, _block_diag_time(small.G.numpy(), n), atol=1e-10)
    # The full system's expected KL is n times one coordinate's.
    kl_small = gaussians.trajectory_kl(small, lqg.to_tensors(prev), lqg.to_tensors(dyn))
    kl_full = gaussians.trajectory_kl(full, lqg.to_tensors(full_args[2]),
                                      lqg.to_tensors(full_args[1]))
    self.assertAllClose(kl_full, n * kl_small, rtol=1e-9)
    self.assertGreater(float(kl_small), 1e-3)  # a real change, not psi_prev again

  def test_batched_over_groups_equals_separate_solves(self):
    rng = np.random.default_rng(4)
    horizon, d_x, d_u, groups = 5, 3, 1, 4
    cost = lqg.random_cost(rng, horizon, d_x, d_u, batch=(groups,))
    dyn = lqg.random_dynamics(rng, horizon, d_x, d_u, batch=(groups,))
    prev = lqg.random_policy(rng, horizon, d_x, d_u, batch=(groups,))
    eta = np.array([0.1, 1.0, 10.0, 0.5])
    batched, _ = lqr.backward_pass(*lqg.to_tensors((cost, dyn, prev)), None, None, None, eta)
    for g in range(groups):
      pick = lambda s, g=g: type(s)(*[v[g] for v in s])  # noqa: E731
      alone, _ = lqr.backward_pass(*lqg.to_tensors((pick(cost), pick(dyn), pick(prev))), None,
                                   None, None, eta[g])
      self.assertAllClose(batched.K[g], alone.K, atol=1e-12)
      self.assertAllClose(batched.k[g], alone.k, atol=1e-12)


class PermutationTest(tf.test.TestCase):

  def test_permuting_a_groups_coordinates_permutes_the_controllers_steps(self):
    rng = np.random.default_rng(0)
    group_ids = np.array([0, 0, 0, 0, 1, 1, 1], np.int32)
    gains = rng.normal(size=(2, groups_lib.STATE_SIZE))
    offsets, stddevs = rng.normal(size=2), np.abs(rng.normal(size=2))
    states = rng.normal(size=(7, groups_lib.STATE_SIZE))
    noise = rng.normal(size=7)
    perm = np.array([2, 0, 3, 1, 6, 4, 5])  # within groups
    steps = groups_lib.controller_step(gains, offsets, stddevs, group_ids, states, noise)
    permuted = groups_lib.controller_step(gains, offsets, stddevs, group_ids, states[perm],
                                          noise[perm])
    self.assertAllClose(permuted, tf.gather(steps, perm), atol=1e-12)
    self.assertGreater(float(tf.math.reduce_std(steps)), 0.1)

  def test_permuting_a_variables_coordinates_permutes_the_policys_steps(self):
    rule = keras_l2o.rules.get("gps_lstm", hidden_size=5)
    params = rule.init_meta_params(1)
    params["output"]["kernel"] = tf.random.stateless_normal([5, 1], seed=[1, 2])
    rng = np.random.default_rng(1)
    perm = rng.permutation(12)
    var = tf.zeros([12])
    state, state_p = rule.init_state(var), rule.init_state(var)
    for step in range(1, 5):
      grad = rng.normal(size=12).astype(np.float32)
      loss = tf.constant(2.0 / step)
      update, state = rule.apply(params, tf.constant(grad), var, state, step, loss=loss)
      update_p, state_p = rule.apply(params, tf.constant(grad[perm]), var, state_p, step,
                                     loss=loss)
      self.assertAllClose(update_p, tf.gather(update, perm), atol=1e-6)
    self.assertGreater(float(tf.math.reduce_std(update)), 1e-4)


class FeatureTest(tf.test.TestCase):

  def test_observation_formulas_on_a_hand_built_history(self):
    obs = coordinate_policy.observe(
        tf.constant(0.9), tf.constant(1.2), tf.constant(True), tf.constant([0.5, -2.0]),
        tf.constant([1.0, -3.0]), tf.constant([0.05, -0.4]), tf.constant([0.0, 0.1]))
    # r = (0.9 - 1.2) / 1.2; n = g / (|g_prev| + 1); q = |dx_{t-1}| / (|dx_{t-2}| + 0.1).
    self.assertAllClose(obs, [[-0.25, 0.25, 0.5], [-0.25, -0.5, 2.0]], atol=1e-6)
    first = coordinate_policy.observe(tf.constant(0.9), tf.constant(0.0), tf.constant(False),
                                      tf.constant([0.5]), tf.zeros([1]), tf.zeros([1]),
                                      tf.zeros([1]))
    self.assertAllClose(first, [[0.0, 0.5, 0.0]])

  def test_sequence_mean_equals_stepwise_apply(self):
    """One formula: the supervised fit's sequence means are the optimizer's steps."""
    rule = keras_l2o.rules.get("gps_lstm", hidden_size=6)
    params = rule.init_meta_params(2)
    params["output"]["kernel"] = tf.random.stateless_normal([6, 1], seed=[3, 4])
    rng = np.random.default_rng(2)
    var = tf.zeros([5])
    state = rule.init_state(var)
    observations, updates = [], []
    losses = [3.0, 2.5, 2.6, 1.9, 1.7, 1.6]
    for step, loss in enumerate(losses, start=1):
      grad = tf.constant(rng.normal(size=5).astype(np.float32))
      observations.append(coordinate_policy.observe(
          tf.constant(loss), state.previous_loss[0], tf.constant(step > 1), grad,
          state.previous_gradient, state.previous_step, state.step_before))
      update, state = rule.apply(params, grad, var, state, step, loss=tf.constant(loss))
      updates.append(update)
    sequence = rule.sequence_mean(params, tf.stack(observations, axis=1))  # [5, T]
    self.assertAllClose(sequence, tf.stack(updates, axis=1), atol=1e-7)

  def test_momentum_gain_reproduces_heavy_ball(self):
    """dx = gain . s with the state's exponential averages is heavy-ball momentum."""
    family = problems.get("quadratic", num_quadratics=1, dims=3, horizon=30)
    problem = family.sample("test", 0)
    layout = groups_lib.group_layout([(1, 3)], 3, seed=0)
    rate, momentum = 0.02, 0.9
    gain = np.tile(groups_lib.momentum_gain(rate, momentum), (30, 1, 1))
    zeros = np.zeros([30, 1])
    out = groups_lib.rollout(family, problem.tensors, layout, gain, zeros, zeros,
                             tf.constant([[0, 0]], tf.int32))
    # The same steps from keras_l2o's momentum rule (v <- m v + g, dx = -rate v).
    losses, final, _ = unroll_lib.unroll(
        keras_l2o.rules.get("momentum", momentum=momentum), {}, family, problem.tensors,
        unroll_lib.init_state(keras_l2o.rules.get("momentum", momentum=momentum),
                                    family, problem.tensors), 30, learning_rate=rate)
    self.assertAllClose(out.losses[0, :30], losses, rtol=1e-4)
    self.assertAllClose(out.losses[0, 30], final, rtol=1e-4)
    self.assertLess(float(out.losses[0, -1]), 0.5 * float(out.losses[0, 0]))

  def test_measured_curvature_is_the_rayleigh_quotient_on_a_quadratic(self):
    family = problems.get("quadratic", num_quadratics=1, dims=4, horizon=3)
    problem = family.sample("test", 0)
    layout = groups_lib.group_layout([(1, 4)], 4, seed=0)
    gain = np.tile(groups_lib.momentum_gain(0.01, 0.0), (3, 1, 1))
    out = groups_lib.rollout(family, problem.tensors, layout, gain, np.zeros([3, 1]),
                             np.full([3, 1], 0.3), tf.constant([[5, 6]], tf.int32))
    # f = ||W x - y||^2: Hessian 2 W^T W.
    w = problem.tensors["w"].numpy()[0]
    hessian = 2.0 * w.T @ w
    for t in range(3):
      step = out.actions.numpy()[0, 0, :, t]  # all 4 coordinates are tracked
      order = layout.tracked[0]
      full_step = np.zeros(4)
      full_step[order] = step
      expected = full_step @ hessian @ full_step / (full_step @ full_step)
      self.assertAllClose(out.curvatures[0, t], expected, rtol=2e-3)

  def test_group_cost_is_the_second_order_change_of_the_objective(self):
    cost = groups_lib.group_cost(np.array([[4.0, 4.0, 4.0]]), np.array([2.0]), 3)
    d_y = groups_lib.STATE_SIZE + 1
    y = np.zeros(d_y)
    y[groups_lib.GRADIENT_INDEX], y[-1] = 1.5, -0.25
    values = [0.5 * y @ cost.Cm.numpy()[0, t] @ y for t in range(3)]
    change = 1.5 * -0.25 + 0.5 * 4.0 * 0.25 ** 2  # g u + h u^2 / 2
    self.assertAllClose(values, [2.0 * w * change for w in (1.0, 2.0 / 3.0, 1.0 / 3.0)])

  def test_layout_tracks_coordinates_inside_their_group(self):
    layout = groups_lib.group_layout([(3, 4), (4,), (2,)], 5, seed=7)
    self.assertEqual(layout.sizes, (12, 4, 2))
    for g, (low, high) in enumerate([(0, 12), (12, 16), (16, 18)]):
      self.assertTrue(np.all((layout.tracked[g] >= low) & (layout.tracked[g] < high)))
    self.assertLen(np.unique(layout.tracked[0]), 5)  # without replacement when possible
    self.assertAllEqual(layout.group_ids[[0, 11, 12, 15, 16, 17]], [0, 0, 1, 1, 2, 2])


if __name__ == "__main__":
  tf.test.main()
