"""Per-time-step linear-Gaussian fits with a GMM prior (GPS.md 3.1 and 3.4).

`prior_regression` is the one formula: the Gaussian regression of the last
block of a point on its first block, with the joint covariance pulled toward a
prior. `fit_dynamics` applies it to [x_t; u_t; x_{t+1}] (the dynamics),
`linearize_policy` to [x_t; mu_pi(o_t)] (the global policy, linearised).
The priors (`DynamicsPrior`, `PolicyPrior`) are GMMs over points pooled over
time steps and the most recent trajectories.

Example:
  >>> import numpy as np
  >>> rng = np.random.default_rng(0)
  >>> x = rng.normal(size=(200, 3, 1)); u = rng.normal(size=(200, 3, 1))
  >>> for t in range(2):
  ...   x[:, t + 1] = 0.5 * x[:, t] + 2. * u[:, t] + 1.
  >>> dyn = fit_dynamics(x, u)
  >>> np.round(dyn.F.numpy()[0], 4).tolist(), np.round(dyn.f.numpy()[0], 4).tolist()
  ([[0.5, 2.0]], [1.0])
"""

from absl import logging
import tensorflow as tf

from . import gmm as gmm_lib
from . import types

_DTYPE = tf.float64


def _symmetrise(matrix):
  return 0.5 * (matrix + tf.linalg.matrix_transpose(matrix))


def _posterior_moments(points, prior):
  """The sample mean of `points` [..., N, D] and the covariance Sigma of `prior_regression`."""
  count = tf.cast(tf.shape(points)[-2], _DTYPE)
  mean = tf.reduce_mean(points, axis=-2)
  centred = points - mean[..., tf.newaxis, :]
  scatter = tf.linalg.matmul(centred, centred, transpose_a=True)  # N S_hat
  if prior is None:
    sigma = scatter / count
  else:
    mu0, phi, m, n0 = (tf.convert_to_tensor(v, _DTYPE) for v in prior)
    m = m[..., tf.newaxis, tf.newaxis]
    n0 = n0[..., tf.newaxis, tf.newaxis]
    offset = mean - mu0
    sigma = (scatter + phi
             + count * m / (count + m) * offset[..., :, tf.newaxis] * offset[..., tf.newaxis, :])
    sigma /= count + n0
  return mean, _symmetrise(sigma)


def prior_regression(points, input_dim, prior=None, regularization=1e-6):
  """Gaussian regression of y on z for points [z; y], with an optional prior.

  With N points, sample mean mu_hat and (biased) sample covariance S_hat, and a
  prior (mu0, Phi, m, n0) (GPS.md 3.1):

      Sigma = [N S_hat + Phi + N m / (N + m) (mu_hat - mu0)(mu_hat - mu0)^T] / (N + n0)
      Sigma_zz += regularization * I
      F = (Sigma_zz^-1 Sigma_zy)^T,  f = mu_hat_y - F mu_hat_z,
      W = Sigma_yy - F Sigma_zz F^T.

  Without a prior, Sigma = S_hat.

  Args:
    points: [..., N, D] float array, rows [z; y] with z the first `input_dim`.
    input_dim: size of z, 0 < input_dim < D.
    prior: None or `(mu0 [..., D], Phi [..., D, D], m, n0)` (m, n0 scalars or
      broadcastable to the batch), e.g. from `GMM.moments`.
    regularization: added to the diagonal of the z-block of Sigma.

  Returns:
    `(F [..., D - input_dim, input_dim], f [..., D - input_dim],
    W [..., D - input_dim, D - input_dim])` float64.

  Raises:
    ValueError: on a bad `input_dim` or a negative regularization.
    tf.errors.InvalidArgumentError: when Sigma_zz is not positive definite
      (increase `regularization`).
  """
  points = tf.convert_to_tensor(points, _DTYPE)
  dim = points.shape[-1]
  if not 0 < input_dim < dim:
    raise ValueError(f"`input_dim` must be in [1, {dim - 1}] for points of dimension {dim}. "
                     f"Received: input_dim={input_dim}")
  if regularization < 0:
    raise ValueError(f"`regularization` must be >= 0. Received: regularization={regularization}")
  mean, sigma = _posterior_moments(points, prior)
  sigma_zz = sigma[..., :input_dim, :input_dim] + regularization * tf.eye(input_dim, dtype=_DTYPE)
  sigma_zy = sigma[..., :input_dim, input_dim:]
  chol = tf.linalg.cholesky(sigma_zz)
  tf.debugging.assert_all_finite(
      chol, "prior_regression: the input block of the covariance is not positive definite; "
      "increase `regularization` or use a prior")
  gain = tf.linalg.matrix_transpose(tf.linalg.cholesky_solve(chol, sigma_zy))
  offset_term = mean[..., input_dim:] - tf.linalg.matvec(gain, mean[..., :input_dim])
  noise = sigma[..., input_dim:, input_dim:] - tf.linalg.matmul(
      gain, tf.linalg.matmul(sigma_zz, gain, transpose_b=True))
  return gain, offset_term, _symmetrise(noise)


class _GMMPrior(tf.Module):
  """A GMM over per-trajectory points, refitted on the last `max_samples` trajectories."""

  def __init__(self, max_clusters, min_samples_per_cluster, max_samples, strength, seed, em_iterations, name):
    super().__init__(name=name)
    for key, value in (("max_clusters", max_clusters), ("min_samples_per_cluster", min_samples_per_cluster),
                       ("max_samples", max_samples)):
      if int(value) != value or value < 1:
        raise ValueError(f"`{key}` must be a positive integer. Received: {key}={value}")
    if strength <= 0:
      raise ValueError(f"`strength` must be > 0. Received: strength={strength}")
    self.max_clusters = int(max_clusters)
    self.min_samples_per_cluster = int(min_samples_per_cluster)
    self.max_samples = int(max_samples)
    self.strength = float(strength)
    self.gmm = gmm_lib.GMM(seed=seed, max_iterations=em_iterations)
    # [trajectories, steps, D]: the points of the buffered trajectories.
    self.buffer = tf.Variable(tf.zeros([0, 0, 0], _DTYPE), shape=tf.TensorShape(None),
                              trainable=False, name="buffer")

  def num_clusters(self, num_trajectories, num_steps):
    """K = max(2, min(max_clusters, floor(N T / min_samples_per_cluster)))."""
    return max(2, min(self.max_clusters, (num_trajectories * num_steps) // self.min_samples_per_cluster))

  def _update(self, points):
    """Appends [N, T', D] points, keeps the last `max_samples` trajectories, refits."""
    if points.shape.rank != 3:
      raise ValueError(f"{type(self).__name__}.update takes one condition's trajectories [N, T, ...] "
                       f"(no extra batch dimensions). Received points of shape {points.shape}.")
    old = self.buffer.value()
    if old.shape[0] and old.shape[1:] != points.shape[1:]:
      raise ValueError(f"New points of shape {points.shape[1:]} (per trajectory) do not match the "
                       f"buffered ones {old.shape[1:]}.")
    buffer = tf.concat([old, points], axis=0) if old.shape[0] else points
    buffer = buffer[-self.max_samples:]
    self.buffer.assign(buffer)
    num_trajectories = int(buffer.shape[0])
    # GPS.md 3.1 counts N T with T the horizon; the points hold T or T - 1 steps.
    num_clusters = self.num_clusters(num_trajectories, self._horizon(points))
    pooled = tf.reshape(buffer, [-1, buffer.shape[-1]])
    log_likelihood = self.gmm.fit(pooled, num_clusters)
    logging.vlog(1, "%s: %d trajectories, %d clusters, log-likelihood %.6g",
                 self.name, num_trajectories, num_clusters, log_likelihood)
    return log_likelihood

  def _horizon(self, points):
    return int(points.shape[1])

  def moments(self, points):
    """`(mu0, Phi, m, n0)` for points [..., N, D] (see `GMM.moments`), strength applied."""
    return self.gmm.moments(points, self.strength)


class DynamicsPrior(_GMMPrior):
  """GMM prior over y = [x_t; u_t; x_{t+1}] pooled over t and recent trajectories.

  Call `update(states, actions)` once per GPS iteration with the new samples,
  then pass the prior to `fit_dynamics`. The buffer and the GMM are variables:
  a `tf.train.Checkpoint` of the prior resumes it exactly.

  Args:
    max_clusters: upper bound on K (GPS default 50; [LM] 20).
    min_samples_per_cluster: K = max(2, min(max_clusters, floor(N T / this))).
    max_samples: number of most recent trajectories kept (GPS default 20).
    strength: the prior's pseudo-count m = n0 (GPS default 1.0).
    seed: seed of the GMM initialisation.
    em_iterations: at most this many EM iterations per refit (GPS.md: 100).
    name: module name.
  """

  def __init__(self, max_clusters=50, min_samples_per_cluster=20, max_samples=20, strength=1.0, seed=0,
               em_iterations=100, name="dynamics_prior"):
    super().__init__(max_clusters, min_samples_per_cluster, max_samples, strength, seed, em_iterations, name)

  def _horizon(self, points):
    return int(points.shape[1]) + 1

  def update(self, states, actions):
    """Adds trajectories (states [N, T, dX], actions [N, T, dU]) and refits the GMM.

    Returns:
      The GMM's final mean log-likelihood per point.
    """
    states, actions = _check_trajectories(states, actions, "actions")
    return self._update(_transition_points(states, actions))


class PolicyPrior(_GMMPrior):
  """GMM prior over [x_t; mu_pi(o_t)] for `linearize_policy` (same rules as `DynamicsPrior`)."""

  def __init__(self, max_clusters=50, min_samples_per_cluster=20, max_samples=20, strength=1.0, seed=0,
               em_iterations=100, name="policy_prior"):
    super().__init__(max_clusters, min_samples_per_cluster, max_samples, strength, seed, em_iterations, name)

  def update(self, states, policy_means):
    """Adds trajectories (states [N, T, dX], policy means [N, T, dU]) and refits the GMM."""
    states, policy_means = _check_trajectories(states, policy_means, "policy_means")
    return self._update(tf.concat([states, policy_means], axis=-1))


def _check_trajectories(states, actions, actions_name):
  states = tf.convert_to_tensor(states, _DTYPE)
  actions = tf.convert_to_tensor(actions, _DTYPE)
  if states.shape.rank < 3 or actions.shape.rank != states.shape.rank or states.shape[:-1] != actions.shape[:-1]:
    raise ValueError(f"`states` [..., N, T, dX] and `{actions_name}` [..., N, T, dU] must agree on all but "
                     f"the last dimension. Received shapes {states.shape} and {actions.shape}.")
  return states, actions


def _transition_points(states, actions):
  """[..., N, T - 1, dX + dU + dX] rows [x_t; u_t; x_{t+1}]."""
  return tf.concat([states[..., :-1, :], actions[..., :-1, :], states[..., 1:, :]], axis=-1)


def _time_major(points):
  """[..., N, T, D] -> [..., T, N, D]."""
  rank = points.shape.rank
  perm = list(range(rank - 3)) + [rank - 2, rank - 3, rank - 1]
  return tf.transpose(points, perm)


def fit_dynamics(states, actions, prior=None, regularization=1e-6, x0_floor=1e-6):
  """Fits x_{t+1} ~ N(F_t [x_t; u_t] + f_t, W_t) per time step (GPS.md 3.1).

  Each step's N transitions are regressed with `prior_regression` under the
  prior's moments for those transitions. The last step has no successor: its
  F, f and W are zeros. The initial state's mean is the sample mean and its
  covariance the (biased) sample covariance plus `x0_floor * I`.

  Args:
    states: [..., N, T, dX] sampled states.
    actions: [..., N, T, dU] the actions taken.
    prior: None, or a `DynamicsPrior` (already updated with these samples), or
      any object whose `moments(points [..., T - 1, N, D])` returns
      `(mu0, Phi, m, n0)`.
    regularization: added to the [x, u] block of each joint covariance.
    x0_floor: added to the diagonal of the initial-state covariance.

  Returns:
    `types.LinearDynamics` with F [..., T, dX, dX + dU], f [..., T, dX],
    W [..., T, dX, dX], x0_mean [..., dX], x0_cov [..., dX, dX].

  Raises:
    ValueError: on mismatched shapes or T < 2.
  """
  states, actions = _check_trajectories(states, actions, "actions")
  if states.shape[-2] < 2:
    raise ValueError(f"`states` needs at least 2 time steps to fit dynamics. Received shape {states.shape}.")
  dx, du = states.shape[-1], actions.shape[-1]
  points = _time_major(_transition_points(states, actions))  # [..., T - 1, N, D]
  moments = None if prior is None else prior.moments(points)
  gain, offset, noise = prior_regression(points, dx + du, moments, regularization)
  pad = [[0, 0]] * (gain.shape.rank - 3) + [[0, 1], [0, 0], [0, 0]]
  gain, noise = tf.pad(gain, pad), tf.pad(noise, pad)
  offset = tf.pad(offset, pad[:-1])
  x0 = states[..., 0, :]  # [..., N, dX]
  x0_mean = tf.reduce_mean(x0, axis=-2)
  centred = x0 - x0_mean[..., tf.newaxis, :]
  x0_cov = tf.linalg.matmul(centred, centred, transpose_a=True) / tf.cast(tf.shape(x0)[-2], _DTYPE)
  x0_cov = x0_cov + x0_floor * tf.eye(dx, dtype=_DTYPE)
  return types.LinearDynamics(F=gain, f=offset, W=noise, x0_mean=x0_mean, x0_cov=x0_cov)


def linearize_policy(states, policy_means, policy_var, prior=None, regularization=1e-6):
  """Linearises the global policy around the samples (GPS.md 3.4).

  At each step, regresses mu_pi(o_t) on x_t: mu_pi ~ K_pi x + k_pi with
  residual covariance S_pi; the policy's own (diagonal) variance is added.

  Args:
    states: [..., N, T, dX] sampled states.
    policy_means: [..., N, T, dU] the global policy's mean action at each sample.
    policy_var: [..., dU] (or broadcastable) diagonal of Sigma_pi.
    prior: None, a `PolicyPrior`, or any object with `moments(points)` for
      points [..., T, N, dX + dU].
    regularization: added to the x block of each joint covariance.

  Returns:
    `types.LinearGaussianPolicy(K [..., T, dU, dX], k [..., T, dU],
    G = S_pi + diag(policy_var) [..., T, dU, dU])`.
  """
  states, policy_means = _check_trajectories(states, policy_means, "policy_means")
  points = _time_major(tf.concat([states, policy_means], axis=-1))  # [..., T, N, D]
  moments = None if prior is None else prior.moments(points)
  gain, offset, residual = prior_regression(points, states.shape[-1], moments, regularization)
  policy_var = tf.convert_to_tensor(policy_var, _DTYPE)
  covariance = residual + tf.linalg.diag(policy_var)[..., tf.newaxis, :, :]
  return types.LinearGaussianPolicy(K=gain, k=offset, G=covariance)
