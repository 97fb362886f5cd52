"""A Gaussian mixture fitted by EM: the prior behind GPS's linear-Gaussian fits.

GPS.md 3.1: the mixture is fitted to points pooled over time steps and recent
trajectories; at each time step the responsibilities of that step's points
turn it into the moments of a Normal-inverse-Wishart-like prior, which
`dynamics.prior_regression` combines with the step's few samples.

All arithmetic is float64. The state (means, covariances, log-weights) lives in
`tf.Variable`s of unconstrained shape, so a `tf.train.Checkpoint` holding the
GMM restores it exactly, whatever number of clusters the last fit used.

Example:
  >>> import numpy as np
  >>> rng = np.random.default_rng(0)
  >>> points = np.concatenate([rng.normal(-5., 1., (50, 2)), rng.normal(5., 1., (50, 2))])
  >>> gmm = GMM(seed=1)
  >>> _ = gmm.fit(points, num_clusters=2)
  >>> sorted(np.round(gmm.means.numpy()[:, 0]).tolist())
  [-5.0, 5.0]
"""

import math

from absl import logging
import tensorflow as tf

_DTYPE = tf.float64


def _unshaped_variable(rank, name):
  return tf.Variable(tf.zeros([0] * rank, _DTYPE), shape=tf.TensorShape(None),
                     trainable=False, name=name)


def _log_densities(points, means, covariances):
  """log N(points_n; mean_k, cov_k) as [..., N, K] (cov already regularised).

  One triangular solve per cluster with all points as its right-hand sides,
  L_k^-1 [x_1 - mu_k, ..., x_P - mu_k]: memory O(K P D). (A tfp
  `MultivariateNormalTriL` with the points along a batch axis broadcasts the
  D x D scale to every point, O(K P D^2): gigabytes for GPS's 470-dimensional
  dynamics points.)
  """
  scale_tril = tf.linalg.cholesky(covariances)  # [K, D, D]
  dim = tf.shape(points)[-1]
  flat = tf.reshape(points, [-1, dim])  # [P, D]
  centred = tf.linalg.matrix_transpose(flat[tf.newaxis] - means[:, tf.newaxis, :])  # [K, D, P]
  whitened = tf.linalg.triangular_solve(scale_tril, centred, lower=True)
  mahalanobis = tf.reduce_sum(tf.square(whitened), axis=-2)  # [K, P]
  half_log_det = tf.reduce_sum(tf.math.log(tf.linalg.diag_part(scale_tril)), axis=-1)  # [K]
  log_prob = (-0.5 * mahalanobis - half_log_det[:, tf.newaxis]
              - 0.5 * tf.cast(dim, _DTYPE) * math.log(2.0 * math.pi))
  out_shape = tf.concat([tf.shape(points)[:-1], tf.shape(means)[:1]], axis=0)
  return tf.reshape(tf.linalg.matrix_transpose(log_prob), out_shape)


@tf.function(reduce_retracing=True)
def _em_step(points, means, covariances, log_weights, covariance_floor):
  """One E-step and M-step; returns the new parameters and the mean log-likelihood."""
  log_joint = _log_densities(points, means, covariances) + log_weights
  log_norm = tf.reduce_logsumexp(log_joint, axis=-1, keepdims=True)
  resp = tf.exp(log_joint - log_norm)  # [N, K]
  new_means, new_covs, new_log_weights = _m_step(points, resp, means, covariances, covariance_floor)
  return new_means, new_covs, new_log_weights, tf.reduce_mean(log_norm)


def _m_step(points, resp, means, covariances, covariance_floor):
  """Weighted means, covariances (+ floor I) and log-weights from responsibilities [N, K].

  A cluster with (numerically) no responsibility keeps the given mean and
  covariance; its weight is zero.
  """
  counts = tf.reduce_sum(resp, axis=0)  # [K]
  alive = counts > 1e-10
  safe_counts = tf.where(alive, counts, tf.ones_like(counts))
  new_means = tf.einsum("nk,nd->kd", resp, points) / safe_counts[:, tf.newaxis]
  diff = points[tf.newaxis] - new_means[:, tf.newaxis]  # [K, N, D]
  weighted = tf.linalg.matrix_transpose(resp)[:, :, tf.newaxis] * diff  # [K, N, D]
  # (a three-operand einsum here can materialise [N, K, D, D]: gigabytes at D = 470)
  new_covs = tf.linalg.matmul(weighted, diff, transpose_a=True) / safe_counts[:, tf.newaxis,
                                                                                tf.newaxis]
  new_covs = 0.5 * (new_covs + tf.linalg.matrix_transpose(new_covs))
  new_covs += covariance_floor * tf.eye(tf.shape(points)[-1], dtype=_DTYPE)
  new_means = tf.where(alive[:, tf.newaxis], new_means, means)
  new_covs = tf.where(alive[:, tf.newaxis, tf.newaxis], new_covs, covariances)
  total = tf.cast(tf.shape(points)[0], _DTYPE)
  return new_means, new_covs, tf.math.log(counts / total)


class GMM(tf.Module):
  """Full-covariance Gaussian mixture, fitted by EM in float64.

  Initialisation (deterministic given `seed` and the points): k-means++ seeding
  (stateless draws from `seed`, distances in units of each coordinate's overall
  standard deviation), then one M-step from the hard nearest-centre assignment.
  `fit(..., warm_start=True)` instead starts from the current state when it has
  the same number of clusters and dimension (as GPS refits every iteration).

  Checkpointing: `means` [K, D], `covariances` [K, D, D] and `log_weights` [K]
  are `tf.Variable`s of unconstrained shape; save and restore the GMM (or any
  module holding it) with `tf.train.Checkpoint`.

  Args:
    seed: integer seed of the initialisation.
    max_iterations: at most this many EM iterations per fit (GPS.md: 100).
    tolerance: stop when the mean log-likelihood changes by less than
      `tolerance * max(1, |log-likelihood|)`.
    covariance_floor: added to every covariance's diagonal (GPS.md: 1e-6).
    name: module name.

  Raises:
    ValueError: on a negative floor or tolerance, or `max_iterations < 1`.
  """

  def __init__(self, seed=0, max_iterations=100, tolerance=1e-5, covariance_floor=1e-6, name="gmm"):
    super().__init__(name=name)
    if max_iterations < 1:
      raise ValueError(f"`max_iterations` must be >= 1. Received: max_iterations={max_iterations}")
    if tolerance < 0 or covariance_floor < 0:
      raise ValueError("`tolerance` and `covariance_floor` must be >= 0. Received: "
                       f"tolerance={tolerance}, covariance_floor={covariance_floor}")
    self.seed = int(seed)
    self.max_iterations = int(max_iterations)
    self.tolerance = float(tolerance)
    self.covariance_floor = float(covariance_floor)
    self.means = _unshaped_variable(2, "means")
    self.covariances = _unshaped_variable(3, "covariances")
    self.log_weights = _unshaped_variable(1, "log_weights")

  # ------------------------------------------------------------- state --
  @property
  def num_clusters(self) -> int:
    """The number of clusters of the current fit (0 before the first fit)."""
    return int(tf.shape(self.log_weights)[0])

  @property
  def is_fitted(self) -> bool:
    return self.num_clusters > 0

  def get_state(self):
    """`(means [K, D], covariances [K, D, D], log_weights [K])` as numpy arrays."""
    return self.means.numpy(), self.covariances.numpy(), self.log_weights.numpy()

  def set_state(self, means, covariances, log_weights):
    """Sets the mixture directly (e.g. from `get_state` of another GMM)."""
    self.means.assign(tf.convert_to_tensor(means, _DTYPE))
    self.covariances.assign(tf.convert_to_tensor(covariances, _DTYPE))
    self.log_weights.assign(tf.convert_to_tensor(log_weights, _DTYPE))

  def _check_fitted(self, points):
    if not self.is_fitted:
      raise ValueError("The GMM has not been fitted yet: call `fit(points, num_clusters)` first.")
    dim = int(tf.shape(self.means)[1])
    if points.shape[-1] != dim:
      raise ValueError(f"`points` must have last dimension {dim} (the GMM's). "
                       f"Received shape {points.shape}.")

  # --------------------------------------------------------------- fit --
  def _initial_state(self, points, num_clusters):
    """k-means++ seeding, then one M-step from the hard nearest-centre assignment."""
    n, dim = points.shape
    eye = tf.eye(dim, dtype=_DTYPE)
    centred = points - tf.reduce_mean(points, axis=0)
    overall_cov = tf.matmul(centred, centred, transpose_a=True) / n + self.covariance_floor * eye
    # Distances in units of the overall standard deviations (scale-free seeding).
    scaled = centred / tf.sqrt(tf.linalg.diag_part(overall_cov))
    first = tf.random.stateless_uniform([], seed=[self.seed, 0], maxval=n, dtype=tf.int32)
    chosen = [first]
    sq_dist = tf.reduce_sum(tf.square(scaled - scaled[first]), axis=-1)
    for k in range(1, num_clusters):
      # D^2 sampling; the tiny offset keeps it defined when all points coincide.
      logits = tf.math.log(sq_dist + 1e-300)[tf.newaxis]
      index = tf.random.stateless_categorical(logits, 1, seed=[self.seed, k], dtype=tf.int32)[0, 0]
      chosen.append(index)
      sq_dist = tf.minimum(sq_dist, tf.reduce_sum(tf.square(scaled - scaled[index]), axis=-1))
    chosen = tf.stack(chosen)
    centres = tf.gather(scaled, chosen)
    distances = tf.reduce_sum(tf.square(scaled[:, tf.newaxis] - centres[tf.newaxis]), axis=-1)  # [N, K]
    resp = tf.one_hot(tf.argmin(distances, axis=-1), num_clusters, dtype=_DTYPE)
    means = tf.gather(points, chosen)
    covs = tf.tile(overall_cov[tf.newaxis], [num_clusters, 1, 1])
    return _m_step(points, resp, means, covs, tf.constant(self.covariance_floor, _DTYPE))[:3]

  def fit(self, points, num_clusters, warm_start=True):
    """Fits the mixture to `points` by EM and stores the result.

    Args:
      points: [N, D] array, N >= num_clusters.
      num_clusters: K >= 1.
      warm_start: start from the stored mixture when it has K clusters of
        dimension D; otherwise (or when False) initialise from the seed.

    Returns:
      The final mean log-likelihood per point (a Python float).

    Raises:
      ValueError: on points that are not a finite [N, D] array with
        N >= num_clusters, or num_clusters < 1.
    """
    points = tf.convert_to_tensor(points, _DTYPE)
    if points.shape.rank != 2:
      raise ValueError(f"`points` must be a [N, D] array. Received shape {points.shape}.")
    num_clusters = int(num_clusters)
    if num_clusters < 1 or points.shape[0] < num_clusters:
      raise ValueError("`num_clusters` must be between 1 and the number of points "
                       f"({points.shape[0]}). Received: num_clusters={num_clusters}")
    tf.debugging.assert_all_finite(points, "GMM.fit received non-finite points")
    same_shape = (self.is_fitted and self.num_clusters == num_clusters
                  and int(tf.shape(self.means)[1]) == points.shape[1])
    if warm_start and same_shape:
      means, covs, log_weights = self.means.value(), self.covariances.value(), self.log_weights.value()
    else:
      means, covs, log_weights = self._initial_state(points, num_clusters)
    floor = tf.constant(self.covariance_floor, _DTYPE)
    previous = None
    for iteration in range(self.max_iterations):
      means, covs, log_weights, log_likelihood = _em_step(points, means, covs, log_weights, floor)
      log_likelihood = float(log_likelihood)
      if not math.isfinite(log_likelihood):
        raise ValueError(f"EM diverged (log-likelihood {log_likelihood}) at iteration {iteration}; "
                         "increase `covariance_floor` or standardise the points.")
      if previous is not None and abs(log_likelihood - previous) < self.tolerance * max(1., abs(log_likelihood)):
        break
      previous = log_likelihood
    logging.vlog(1, "GMM: K=%d, %d EM iterations, mean log-likelihood %.6g",
                 num_clusters, iteration + 1, log_likelihood)
    self.means.assign(means)
    self.covariances.assign(covs)
    self.log_weights.assign(log_weights)
    return log_likelihood

  # --------------------------------------------------------- inference --
  def responsibilities(self, points):
    """Posterior cluster probabilities p(k | point).

    Args:
      points: [..., N, D].

    Returns:
      [..., N, K] float64, summing to 1 over K.
    """
    points = tf.convert_to_tensor(points, _DTYPE)
    self._check_fitted(points)
    log_joint = _log_densities(points, self.means, self.covariances) + self.log_weights
    return tf.exp(log_joint - tf.reduce_logsumexp(log_joint, axis=-1, keepdims=True))

  def moments(self, points, strength=1.0):
    """The prior moments of GPS.md 3.1 for a set of points (one time step).

    With w_k the mean responsibility of cluster k over the N points:

        mu0 = sum_k w_k mu_k
        Phi = strength * sum_k w_k (Sigma_k + (mu_k - mu0)(mu_k - mu0)^T)
        m = n0 = strength

    Args:
      points: [..., N, D]; the leading dimensions are batch (e.g. time steps).
      strength: the prior's pseudo-count (GPS default 1.0).

    Returns:
      `(mu0 [..., D], Phi [..., D, D], m, n0)`, m and n0 float64 scalars.
    """
    if strength <= 0:
      raise ValueError(f"`strength` must be > 0. Received: strength={strength}")
    weights = tf.reduce_mean(self.responsibilities(points), axis=-2)  # [..., K]
    mu0 = tf.einsum("...k,kd->...d", weights, self.means)
    diff = self.means - mu0[..., tf.newaxis, :]  # [..., K, D]
    phi = (tf.einsum("...k,kde->...de", weights, self.covariances)
           + tf.einsum("...k,...kd,...ke->...de", weights, diff, diff))
    strength = tf.constant(strength, _DTYPE)
    return mu0, strength * phi, strength, strength
