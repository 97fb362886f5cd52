"""BADMM dual updates and the supervised policy (theta) step (GPS.md 3.5).

Shapes: N samples, T time steps, dU actions; every function also accepts
leading batch dimensions `...` before them (conditions or coordinate groups).
Arrays are float64 except where noted.

Example:
  >>> import numpy as np
  >>> lam = update_lambda(lam=np.zeros([1, 1]), nu=np.ones([1]), G=np.full([1, 1, 1], 2.),
  ...                     mu_psi=np.ones([3, 1, 1]), mu_pi=np.zeros([3, 1, 1]), rate=0.1)
  >>> round(float(lam[0, 0]), 12)
  -0.05
"""

import tensorflow as tf
import tensorflow_probability as tfp

_DTYPE = tf.float64
_NU_MODES = ("lm", "default")


def _f64(value):
  return tf.convert_to_tensor(value, _DTYPE)


def update_lambda(lam, nu, G, mu_psi, mu_pi, rate):  # pylint: disable=invalid-name
  """lambda_t <- lambda_t - rate nu_t G_t^-1 mean_i(mu_psi(x_i) - mu_pi(o_i)).

  Args:
    lam: [..., T, dU] current multipliers.
    nu: [..., T] KL weights.
    G: [..., T, dU, dU] the local policy's action covariances.
    mu_psi: [..., N, T, dU] the local policy's mean actions at the samples.
    mu_pi: [..., N, T, dU] the global policy's mean actions at the samples.
    rate: the dual step size alpha (GPS 0.1, [LM] 0.2).

  Returns:
    [..., T, dU] the new multipliers.
  """
  lam, nu, G, mu_psi, mu_pi = (_f64(v) for v in (lam, nu, G, mu_psi, mu_pi))  # pylint: disable=invalid-name
  if mu_psi.shape != mu_pi.shape:
    raise ValueError(f"`mu_psi` and `mu_pi` must have the same shape. Received {mu_psi.shape} and {mu_pi.shape}.")
  gap = tf.reduce_mean(mu_psi - mu_pi, axis=-3)  # [..., T, dU]
  step = tf.linalg.cholesky_solve(tf.linalg.cholesky(G), gap[..., tf.newaxis])[..., 0]
  return lam - rate * nu[..., tf.newaxis] * step


def update_nu(nu, kl_per_sample, mode="lm", rate=10.0):
  """Adjusts the KL weights nu_t from KL_t = mean_i KL(psi_t(.|x_i) || pi(.|o_i)).

  Modes (GPS.md 3.5):
    * "lm" (Li & Malik): with the mean and (population) standard deviation of
      KL_t over the T steps, nu_t *= 0.5 where KL_t < mean - 1.0 std and
      nu_t *= 2 where KL_t > mean + 0.5 std; otherwise unchanged.
    * "default": nu_t <- max(0, nu_t + rate KL_t).

  Args:
    nu: [..., T] current weights.
    kl_per_sample: [..., N, T] per-sample KL divergences.
    mode: "lm" or "default".
    rate: the step of the "default" mode (10).

  Returns:
    [..., T] the new weights.

  Raises:
    ValueError: on an unknown mode.
  """
  if mode not in _NU_MODES:
    raise ValueError(f"`mode` must be one of {_NU_MODES}. Received: mode={mode!r}")
  nu = _f64(nu)
  kl = tf.reduce_mean(_f64(kl_per_sample), axis=-2)  # [..., T]
  if mode == "default":
    return tf.maximum(tf.zeros_like(nu), nu + rate * kl)
  mean = tf.reduce_mean(kl, axis=-1, keepdims=True)
  std = tf.math.reduce_std(kl, axis=-1, keepdims=True)
  ones = tf.ones_like(kl)
  factor = tf.where(kl < mean - 1.0 * std, 0.5 * ones, tf.where(kl > mean + 0.5 * std, 2.0 * ones, ones))
  return nu * factor


def policy_targets(mu_psi, G, lam, nu):  # pylint: disable=invalid-name
  """Targets of the supervised policy step: the analytic theta-step minimiser.

  The theta-step objective per sample, lambda_t^T mu + nu_t KL(pi || psi_t),
  depends on the policy mean mu through
  lambda_t^T mu + nu_t / 2 (mu - mu_psi)^T G_t^-1 (mu - mu_psi), minimised at
  mu_tilde = mu_psi - G_t lambda_t / nu_t.

  Args:
    mu_psi: [..., N, T, dU] the local policy's mean actions at the samples.
    G: [..., T, dU, dU].
    lam: [..., T, dU].
    nu: [..., T] (> 0).

  Returns:
    `(mu_target [..., N, T, dU], precision [..., N, T, dU, dU],
    weights [..., N, T])`: precision G_t^-1 and weight nu_t repeated over the
    N samples.
  """
  mu_psi, G, lam, nu = (_f64(v) for v in (mu_psi, G, lam, nu))  # pylint: disable=invalid-name
  shift = tf.linalg.matvec(G, lam) / nu[..., tf.newaxis]  # [..., T, dU]
  mu_target = mu_psi - shift[..., tf.newaxis, :, :]
  eye = tf.eye(G.shape[-1], batch_shape=tf.shape(G)[:-2], dtype=_DTYPE)
  precision = tf.linalg.cholesky_solve(tf.linalg.cholesky(G), eye)
  precision = 0.5 * (precision + tf.linalg.matrix_transpose(precision))
  precision = tf.broadcast_to(precision[..., tf.newaxis, :, :, :],
                              tf.concat([tf.shape(mu_target)[:-1], tf.shape(G)[-2:]], axis=0))
  weights = tf.broadcast_to(nu[..., tf.newaxis, :], tf.shape(mu_target)[:-1])
  return mu_target, precision, weights


def normalise_weights(weights):
  """Normalises sample weights: mean 1, clipped at twice the median, divided by the median.

  The result does not depend on the overall scale of `weights`: its median
  is 1 and its maximum at most 2.

  Args:
    weights: array of positive weights (any shape; all entries count).

  Returns:
    An array of the same shape.
  """
  weights = _f64(weights)
  weights = weights / tf.reduce_mean(weights)
  median = tfp.stats.percentile(weights, 50.0, interpolation="midpoint")
  return tf.minimum(weights, 2.0 * median) / median


def theta_loss(mu_target, precision, weights, mu_pred, batch_size=None):
  """sum_b (mu_tilde_b - mu_b)^T (w_b P_b) (mu_tilde_b - mu_b) / (2 B).

  Differentiable with respect to `mu_pred` (use inside `tf.GradientTape`);
  weight decay is added separately by the caller.

  Args:
    mu_target: [B, dU] targets mu_tilde.
    precision: [B, dU, dU] precisions P.
    weights: [B] sample weights w.
    mu_pred: [B, dU] the policy network's means.
    batch_size: B in the denominator (defaults to the number of rows).

  Returns:
    A scalar in `mu_pred`'s dtype.
  """
  mu_pred = tf.convert_to_tensor(mu_pred)
  dtype = mu_pred.dtype
  mu_target, precision, weights = (tf.cast(v, dtype) for v in (mu_target, precision, weights))
  diff = mu_target - mu_pred
  quadratic = tf.einsum("...i,...ij,...j->...", diff, precision, diff)
  if batch_size is None:
    batch_size = tf.shape(diff)[0]
  return tf.reduce_sum(weights * quadratic) / (2.0 * tf.cast(batch_size, dtype))


def diagonal_variance(precision, weights):
  """The policy's diagonal variance sigma_j^2 = sum w / sum w P_jj (over all samples).

  Args:
    precision: [..., dU, dU].
    weights: [...].

  Returns:
    [dU] float64.
  """
  precision, weights = _f64(precision), _f64(weights)
  diag = tf.linalg.diag_part(precision)
  axes = list(range(diag.shape.rank - 1))
  return tf.reduce_sum(weights) / tf.reduce_sum(weights[..., tf.newaxis] * diag, axis=axes)


class ObservationNormalizer(tf.Module):
  """Standardises observations with statistics frozen at the first update.

  `update(observations)` sets mean and std (floored at `std_floor`) the first
  time and does nothing afterwards; `__call__` returns (obs - mean) / std
  (the identity before the first update). The statistics and the frozen flag
  are variables, so `tf.train.Checkpoint` restores them.

  Args:
    dim: observation size.
    std_floor: lower bound on each standard deviation (1e-3).
    name: module name.

  Example:
    >>> norm = ObservationNormalizer(1)
    >>> norm.update([[1.], [3.]])
    >>> norm.update([[100.], [300.]])  # frozen: no effect
    >>> float(norm([[4.]])[0, 0])
    2.0
  """

  def __init__(self, dim, std_floor=1e-3, name="observation_normalizer"):
    super().__init__(name=name)
    if dim < 1 or std_floor <= 0:
      raise ValueError(f"`dim` must be >= 1 and `std_floor` > 0. Received: dim={dim}, std_floor={std_floor}")
    self.dim = int(dim)
    self.std_floor = float(std_floor)
    self.mean = tf.Variable(tf.zeros([dim], _DTYPE), trainable=False, name="mean")
    self.std = tf.Variable(tf.ones([dim], _DTYPE), trainable=False, name="std")
    self.frozen = tf.Variable(False, trainable=False, name="frozen")

  def _check(self, observations):
    observations = _f64(observations)
    if observations.shape[-1] != self.dim:
      raise ValueError(f"Observations must have last dimension {self.dim}. Received shape {observations.shape}.")
    return observations

  def update(self, observations):
    """Freezes the statistics of `observations` [..., dim] unless already frozen."""
    observations = tf.reshape(self._check(observations), [-1, self.dim])
    mean = tf.reduce_mean(observations, axis=0)
    std = tf.maximum(tf.math.reduce_std(observations, axis=0), self.std_floor)
    self.mean.assign(tf.where(self.frozen, self.mean, mean))
    self.std.assign(tf.where(self.frozen, self.std, std))
    self.frozen.assign(True)

  def __call__(self, observations):
    """(observations - mean) / std for observations [..., dim]."""
    return (self._check(observations) - self.mean) / self.std
