"""GPS dual and policy updates (GPS.md 3.5, section 5 item 6) on hand-computed numbers."""

import os

import numpy as np
import tensorflow as tf

from trainers.gps import policy_update


def _spd(rng, batch, dim):
  root = rng.normal(size=batch + (dim, dim))
  return root @ np.swapaxes(root, -1, -2) + 0.5 * np.eye(dim)


class DualUpdateTest(tf.test.TestCase):

  def test_lambda_update_by_hand(self):
    lam = np.array([[1., 0.], [0., -1.]])
    nu = np.array([0.5, 2.])
    G = np.array([[[2., 0.], [0., 4.]], [[2., 1.], [1., 1.]]])  # pylint: disable=invalid-name
    mu_psi = np.array([[[1., 2.], [1., 1.]], [[3., 0.], [1., 1.]]])  # [N=2, T=2, dU=2]
    mu_pi = np.array([[[0., 0.], [0., 1.]], [[0., 0.], [2., -1.]]])
    # t=0: gap [2, 1], G^-1 gap [1, .25], step .2 * .5 * that = [.1, .025].
    # t=1: gap [0, 1], G^-1 = [[1, -1], [-1, 2]] so G^-1 gap = [-1, 2], step .2 * 2 * that = [-.4, .8].
    got = policy_update.update_lambda(lam, nu, G, mu_psi, mu_pi, rate=0.2)
    self.assertAllClose(got, [[0.9, -0.025], [0.4, -1.8]], atol=1e-12)

  def test_lambda_update_batched_over_groups(self):
    rng = np.random.default_rng(0)
    lam, nu = rng.normal(size=(3, 4, 2)), rng.uniform(size=(3, 4))
    G = _spd(rng, (3, 4), 2)  # pylint: disable=invalid-name
    mu_psi, mu_pi = rng.normal(size=(2, 3, 5, 4, 2))
    batched = policy_update.update_lambda(lam, nu, G, mu_psi, mu_pi, rate=0.1)
    for g in range(3):
      single = policy_update.update_lambda(lam[g], nu[g], G[g], mu_psi[g], mu_pi[g], rate=0.1)
      self.assertAllClose(batched[g], single, atol=1e-12)

  def test_nu_update_lm_mode_by_hand(self):
    kl = np.array([[0., 3., 5., 8.], [0., 5., 3., 8.]])  # KL_t = [0, 4, 4, 8]: mean 4, std sqrt(8)
    # lower = 4 - 2.83 = 1.17 (t=0 below: halve), upper = 4 + 1.41 = 5.41 (t=3 above: double).
    got = policy_update.update_nu([1., 1., 2., 3.], kl, mode="lm")
    self.assertAllClose(got, [0.5, 1., 2., 6.], atol=1e-12)

  def test_nu_update_default_mode_by_hand(self):
    kl = np.array([[0., 3., 5., 8.], [0., 5., 3., 8.]])
    got = policy_update.update_nu([-5., 1., 2., 3.], kl, mode="default")
    self.assertAllClose(got, [0., 41., 42., 83.], atol=1e-12)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"`mode` must be one of \('lm', 'default'\). Received: mode='badmm'"):
      policy_update.update_nu([1.], [[1.]], mode="badmm")
    with self.assertRaisesRegex(ValueError, r"same shape. Received \(2, 1, 1\) and \(3, 1, 1\)"):
      policy_update.update_lambda([[0.]], [1.], [[[1.]]], np.zeros((2, 1, 1)), np.zeros((3, 1, 1)), 0.1)


class ThetaStepTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    rng = np.random.default_rng(1)
    self.n, self.t, self.du = 3, 4, 2
    self.G = _spd(rng, (self.t,), self.du)  # pylint: disable=invalid-name
    self.lam = rng.normal(size=(self.t, self.du))
    self.nu = rng.uniform(0.5, 2., size=self.t)
    self.mu_psi = rng.normal(size=(self.n, self.t, self.du))
    self.mu_other = rng.normal(size=(self.n, self.t, self.du))

  def _theta_objective_gradient(self, mu):
    """Numpy gradient of lam^T mu + nu/2 (mu - mu_psi)^T G^-1 (mu - mu_psi) per sample."""
    inv = np.linalg.inv(self.G)
    return self.lam + self.nu[:, None] * np.einsum("tij,ntj->nti", inv, mu - self.mu_psi)

  def test_targets_minimise_the_theta_objective(self):
    target, precision, weights = policy_update.policy_targets(self.mu_psi, self.G, self.lam, self.nu)
    self.assertAllClose(self._theta_objective_gradient(target.numpy()), np.zeros_like(self.mu_psi), atol=1e-12)
    self.assertAllClose(precision, np.broadcast_to(np.linalg.inv(self.G), (self.n,) + self.G.shape), atol=1e-12)
    self.assertAllClose(weights, np.broadcast_to(self.nu, (self.n, self.t)), atol=0.)

  def _loss_gradient(self, mu, loss_fn=policy_update.theta_loss):
    target, precision, weights = policy_update.policy_targets(self.mu_psi, self.G, self.lam, self.nu)
    flat = lambda v, *rest: tf.reshape(v, [-1] + list(rest))
    mu = tf.Variable(flat(tf.constant(mu), self.du))
    with tf.GradientTape() as tape:
      loss = loss_fn(flat(target, self.du), flat(precision, self.du, self.du), flat(weights), mu)
    return tape.gradient(loss, mu).numpy().reshape(self.n, self.t, self.du)

  def test_theta_loss_gradient_is_zero_at_the_target(self):
    target, _, _ = policy_update.policy_targets(self.mu_psi, self.G, self.lam, self.nu)
    self.assertAllClose(self._loss_gradient(target.numpy()), np.zeros_like(self.mu_psi), atol=1e-8)

  def test_theta_loss_gradient_equals_the_theta_objective_gradient(self):
    # With weights nu, B * d(loss)/d(mu) is the theta-step objective's gradient everywhere.
    batch = self.n * self.t
    fn = tf.function(policy_update.theta_loss)
    got = batch * self._loss_gradient(self.mu_other, loss_fn=fn)
    self.assertAllClose(got, self._theta_objective_gradient(self.mu_other), atol=1e-10)

  def test_theta_loss_value(self):
    target = np.array([[1., 2.], [0., 0.]])
    precision = np.array([[[2., 0.], [0., 1.]], [[1., 0.], [0., 1.]]])
    # Row 0: diff [1, 2], quad 2 + 4 = 6, weight 0.5 -> 3; row 1: diff [-1, 1], quad 2, weight 2 -> 4.
    loss = policy_update.theta_loss(target, precision, [0.5, 2.], np.array([[0., 0.], [1., -1.]]), batch_size=7)
    self.assertAllClose(loss, 7. / 14., atol=1e-12)
    loss32 = policy_update.theta_loss(target, precision, [0.5, 2.], np.array([[0., 0.], [1., -1.]], np.float32))
    self.assertEqual(loss32.dtype, tf.float32)
    self.assertAllClose(loss32, 7. / 4., atol=1e-6)

  def test_diagonal_variance_closed_form_and_minimiser(self):
    rng = np.random.default_rng(2)
    precision = np.linalg.inv(_spd(rng, (self.n, self.t), 3))
    weights = rng.uniform(0.1, 2., size=(self.n, self.t))
    var = policy_update.diagonal_variance(precision, weights)
    diag = np.diagonal(precision, axis1=-2, axis2=-1)
    self.assertAllClose(var, weights.sum() / np.einsum("nt,ntj->j", weights, diag), atol=1e-12)
    # It minimises sum_i w_i KL(N(mu, diag var) || N(mu, P_i^-1)) = sum w/2 (tr(P diag var) - log det var) + c.
    log_var = tf.Variable(tf.math.log(var))
    with tf.GradientTape() as tape:
      objective = tf.reduce_sum(weights[..., None] * 0.5 * (diag * tf.exp(log_var) - log_var))
    self.assertAllClose(tape.gradient(objective, log_var), np.zeros(3), atol=1e-10)

  def test_normalise_weights_on_a_skewed_sample(self):
    rng = np.random.default_rng(3)
    raw = rng.lognormal(mean=0., sigma=1.5, size=(5, 8))
    got = policy_update.normalise_weights(raw).numpy()
    self.assertAllClose(np.median(got), 1., atol=1e-12)
    self.assertAllClose(got.max(), 2., atol=1e-12)
    median = np.median(raw)
    self.assertAllClose(got, np.minimum(raw, 2 * median) / median, atol=1e-12)
    self.assertGreater((got == got.max()).sum(), 3)  # the skewed tail is clipped


class ObservationNormalizerTest(tf.test.TestCase):

  def test_statistics_frozen_at_first_update_and_checkpointed(self):
    obs = np.array([[[1., 5., 2.], [3., 5., 4.]], [[5., 5., 0.], [7., 5., 2.]]])  # [..., 3]
    norm = policy_update.ObservationNormalizer(3)
    self.assertAllClose(norm(obs), obs)  # identity before the first update
    norm.update(obs)
    self.assertAllClose(norm.mean, [4., 5., 2.], atol=1e-12)
    self.assertAllClose(norm.std, [np.sqrt(5.), 1e-3, np.sqrt(2.)], atol=1e-12)  # constant column: floor
    norm.update(obs * 10. + 3.)
    self.assertAllClose(norm.mean, [4., 5., 2.], atol=1e-12)
    self.assertAllClose(norm([[4., 5.001, 4.]]), [[0., 1., np.sqrt(2.)]], atol=1e-9)
    path = tf.train.Checkpoint(norm=norm).write(os.path.join(self.get_temp_dir(), "ckpt"))
    restored = policy_update.ObservationNormalizer(3)
    tf.train.Checkpoint(norm=restored).read(path).assert_consumed()
    restored.update(obs * 2.)  # restored as frozen: no effect
    self.assertAllEqual(restored(obs), norm(obs))
    with self.assertRaisesRegex(ValueError, r"last dimension 3. Received shape \(2, 2\)"):
      norm(np.zeros((2, 2)))


if __name__ == "__main__":
  tf.test.main()
