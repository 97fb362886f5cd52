"""The modified LQR of the GPS eta step and the dual search over eta (GPS.md 3.3).

The local policy psi minimises, per time step,

    E[c_t - lambda_t^T u_t] + eta KL(psi_t || psi_prev_t) + nu_t KL(psi_t || pi_lin_t),

a linear-quadratic problem once the KL terms are written as quadratics
M(K, k, P), v(K, k, P) of [x; u] (with P the precision of the other policy):

    C_hat_t = (Cm_t + eta M(psi_prev) + nu_t M(pi_lin)) / s_t
    c_hat_t = (cv_t - [0; lambda_t] + eta v(psi_prev) + nu_t v(pi_lin)) / s_t

with s_t = eta + nu_t. Stage t is scaled by 1/s_t, so the value of stage t+1
enters with rho_t = s_{t+1} / s_t. Choices made here (GPS.md leaves them open):

* s_T is taken as s_{T-1}, so rho_{T-1} = 1 (V_T = 0, so it does not matter);
* where eta + nu_t = 0 (the plain LQR), s_t = 1: any positive scale gives the
  same K, k; this one gives G_t = Q_uu^-1 of the unscaled cost.

`eta_search` then runs dual gradient descent on eta until the expected
trajectory KL to psi_prev is within 10% of epsilon.

Example:

  >>> import tensorflow as tf
  >>> from trainers.gps import types
  >>> one = tf.ones([1, 1, 1], tf.float64)
  >>> cost = types.QuadraticCost(Cm=tf.eye(2, batch_shape=[1], dtype=tf.float64),
  ...     cv=tf.zeros([1, 2], tf.float64), cc=tf.zeros([1], tf.float64))
  >>> dynamics = types.LinearDynamics(F=tf.ones([1, 1, 2], tf.float64),
  ...     f=tf.zeros([1, 1], tf.float64), W=one, x0_mean=tf.ones([1], tf.float64),
  ...     x0_cov=tf.ones([1, 1], tf.float64))
  >>> policy, ok = backward_pass(cost, dynamics, None, None, None, None, 0.0)
  >>> float(policy.G[0, 0, 0]), bool(ok)  # Q_uu = 1 at the last step
  (1.0, True)
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf
from absl import logging

from . import gaussians
from . import types

INITIAL_ETA_INCREMENT = 1e-4


class EtaSearchResult(NamedTuple):
  """Outcome of `eta_search`.

  Attributes:
    policy: the new `LinearGaussianPolicy`, batch shape `...`.
    eta: [...] float64 numpy array, the final eta per batch entry.
    kl: [...] float64 numpy array, the expected trajectory KL to psi_prev.
    iterations: [...] int numpy array, backward passes until each entry stopped.
  """
  policy: types.LinearGaussianPolicy
  eta: np.ndarray
  kl: np.ndarray
  iterations: np.ndarray


def kl_quadratic(policy: types.LinearGaussianPolicy):
  """M(K, k, P) and v(K, k, P), P = G^-1, the KL to `policy` as a quadratic of y = [x; u].

  1/2 (u - Kx - k)^T P (u - Kx - k) = 1/2 y^T M y + v^T y + const.

  Args:
    policy: a linear-Gaussian policy, K [..., T, dU, dX].

  Returns:
    `(M, v)`: [..., T, dX + dU, dX + dU] and [..., T, dX + dU].
  """
  chol = tf.linalg.cholesky(policy.G)
  precision = tf.linalg.cholesky_solve(chol, tf.eye(policy.G.shape[-1], dtype=tf.float64))
  precision = gaussians.symmetrize(precision)
  p_gain = tf.linalg.matmul(precision, policy.K)  # P K
  kpk = tf.linalg.matmul(policy.K, p_gain, transpose_a=True)  # K^T P K
  matrix = tf.concat([tf.concat([kpk, -tf.linalg.matrix_transpose(p_gain)], axis=-1),
                      tf.concat([-p_gain, precision], axis=-1)], axis=-2)
  p_offset = tf.linalg.matvec(precision, policy.k)  # P k
  vector = tf.concat([tf.linalg.matvec(policy.K, p_offset, transpose_a=True), -p_offset],
                     axis=-1)
  return matrix, vector


def _sizes(cost, dynamics):
  """(dX, dU, T) from the cost and dynamics, with shape checks."""
  d_x = dynamics.F.shape[-2]
  d_xu = dynamics.F.shape[-1]
  if cost.Cm.shape[-1] != d_xu or cost.Cm.shape[-2] != d_xu or cost.cv.shape[-1] != d_xu:
    raise ValueError(f"Cost Cm [..., T, {d_xu}, {d_xu}] and cv [..., T, {d_xu}] must match "
                     f"dynamics F {dynamics.F.shape}; received Cm {cost.Cm.shape}, "
                     f"cv {cost.cv.shape}.")
  if cost.Cm.shape[-3] != dynamics.F.shape[-3]:
    raise ValueError(f"Cost and dynamics horizons differ: Cm has T={cost.Cm.shape[-3]}, "
                     f"F has T={dynamics.F.shape[-3]}.")
  return d_x, d_xu - d_x, dynamics.F.shape[-3]


def _scaled_cost(cost, prev_policy, pi_lin, lam, nu, eta, d_x):
  """The modified cost of the backward pass, divided by eta + nu_t, and rho_t.

  Returns:
    `(matrix [..., T, dXU, dXU], vector [..., T, dXU], rho [..., T])`: the
    cost minus the lambda term, plus eta times the KL to `prev_policy` and
    nu_t times the KL to `pi_lin` (each where given), over eta + nu_t; and
    rho_t = (eta + nu_{t+1}) / (eta + nu_t) (the last step's next is itself).
  """
  eta_t = eta[..., tf.newaxis]  # [..., 1]
  scale = eta_t + nu  # [..., T]
  scale = tf.where(scale > 0.0, scale, tf.ones_like(scale))
  matrix = cost.Cm
  lam_zeros = tf.zeros(tf.concat([tf.shape(lam)[:-1], [d_x]], 0), tf.float64)
  vector = cost.cv - tf.concat([lam_zeros, lam], axis=-1)
  if prev_policy is not None:
    m_prev, v_prev = kl_quadratic(prev_policy)
    matrix = matrix + eta_t[..., tf.newaxis, tf.newaxis] * m_prev
    vector = vector + eta_t[..., tf.newaxis] * v_prev
  if pi_lin is not None:
    m_pi, v_pi = kl_quadratic(pi_lin)
    matrix = matrix + nu[..., tf.newaxis, tf.newaxis] * m_pi
    vector = vector + nu[..., tf.newaxis] * v_pi
  matrix = matrix / scale[..., tf.newaxis, tf.newaxis]
  vector = vector / scale[..., tf.newaxis]
  rho = tf.concat([scale[..., 1:], scale[..., -1:]], axis=-1) / scale
  return matrix, vector, rho


def _backward(cost, dynamics, prev_policy, pi_lin, lam, nu, eta):
  """Body of `backward_pass` on float64 tensors (lam, nu, eta already broadcast)."""
  d_x, d_u, _ = _sizes(cost, dynamics)
  batch_shape = tf.shape(nu)[:-1]
  matrix, vector, rho = _scaled_cost(cost, prev_policy, pi_lin, lam, nu, eta, d_x)
  matrix = tf.broadcast_to(matrix, tf.concat([batch_shape, tf.shape(matrix)[-3:]], 0))
  vector = tf.broadcast_to(vector, tf.concat([batch_shape, tf.shape(vector)[-2:]], 0))
  transition = tf.broadcast_to(dynamics.F, tf.concat([batch_shape, tf.shape(dynamics.F)[-3:]], 0))
  drift = tf.broadcast_to(dynamics.f, tf.concat([batch_shape, tf.shape(dynamics.f)[-2:]], 0))
  elems = (gaussians.time_major(matrix, 2), gaussians.time_major(vector, 1),
           gaussians.time_major(transition, 2), gaussians.time_major(drift, 1),
           gaussians.time_major(rho, 0))
  eye_u = tf.eye(d_u, dtype=tf.float64)

  def step(carry, inputs):
    value_m, value_v = carry[0], carry[1]
    c_hat, c_vec, trans, dr, r = inputs
    r = r[..., tf.newaxis]
    vf = tf.linalg.matmul(value_m, trans)  # V F
    q_m = c_hat + r[..., tf.newaxis] * tf.linalg.matmul(trans, vf, transpose_a=True)
    q_v = c_vec + r * tf.linalg.matvec(trans, value_v + tf.linalg.matvec(value_m, dr),
                                       transpose_a=True)
    q_uu = gaussians.symmetrize(q_m[..., d_x:, d_x:])
    q_ux = q_m[..., d_x:, :d_x]
    chol = tf.linalg.cholesky(q_uu)
    ok = tf.reduce_all(tf.math.is_finite(tf.linalg.diag_part(chol)), axis=-1)
    chol = tf.linalg.band_part(chol, -1, 0)  # the upper triangle is undefined on failure
    gain = -tf.linalg.cholesky_solve(chol, q_ux)
    offset = -tf.linalg.cholesky_solve(chol, q_v[..., d_x:, tf.newaxis])[..., 0]
    noise = gaussians.symmetrize(
        tf.linalg.cholesky_solve(chol, tf.broadcast_to(eye_u, tf.shape(q_uu))))
    q_xu = tf.linalg.matrix_transpose(q_ux)
    new_value_m = gaussians.symmetrize(q_m[..., :d_x, :d_x] + tf.linalg.matmul(q_xu, gain))
    new_value_v = q_v[..., :d_x] + tf.linalg.matvec(q_xu, offset)
    return new_value_m, new_value_v, gain, offset, noise, ok

  init = (tf.zeros(tf.concat([batch_shape, [d_x, d_x]], 0), tf.float64),
          tf.zeros(tf.concat([batch_shape, [d_x]], 0), tf.float64),
          tf.zeros(tf.concat([batch_shape, [d_u, d_x]], 0), tf.float64),
          tf.zeros(tf.concat([batch_shape, [d_u]], 0), tf.float64),
          tf.zeros(tf.concat([batch_shape, [d_u, d_u]], 0), tf.float64),
          tf.ones(batch_shape, tf.bool))
  _, _, gain, offset, noise, ok = tf.scan(step, elems, initializer=init, reverse=True)
  policy = types.LinearGaussianPolicy(K=gaussians.batch_major(gain, 2),
                                      k=gaussians.batch_major(offset, 1),
                                      G=gaussians.batch_major(noise, 2))
  return policy, tf.reduce_all(ok, axis=0)


_backward_graph = tf.function(_backward)


def _backward_and_kl(cost, dynamics, prev_policy, pi_lin, lam, nu, eta):
  policy, ok = _backward(cost, dynamics, prev_policy, pi_lin, lam, nu, eta)
  return policy, ok, gaussians.trajectory_kl(policy, prev_policy, dynamics)


_backward_and_kl_graph = tf.function(_backward_and_kl)


def _prepare(cost, dynamics, prev_policy, pi_lin, lam, nu, eta):
  """Casts to float64, fills lam/nu defaults and broadcasts eta, nu, lam to the batch shape."""
  cost, dynamics, prev_policy, pi_lin = gaussians.as_float64(
      (cost, dynamics, prev_policy, pi_lin))
  d_x, d_u, horizon = _sizes(cost, dynamics)
  for name, policy in (("prev_policy", prev_policy), ("pi_lin", pi_lin)):
    if policy is not None and policy.K.shape[-3:] != (horizon, d_u, d_x):
      raise ValueError(f"{name}.K must be [..., T, dU, dX] = [..., {horizon}, {d_u}, {d_x}]; "
                       f"received shape {policy.K.shape}.")
  batch_shape = tf.broadcast_dynamic_shape(tf.shape(cost.Cm)[:-3], tf.shape(dynamics.F)[:-3])
  for policy in (prev_policy, pi_lin):
    if policy is not None:
      batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(policy.K)[:-3])
  if lam is not None:
    lam = gaussians.to_float64(lam)
    if lam.shape.rank < 2 or lam.shape[-2:] != (horizon, d_u):
      raise ValueError(f"lam must be [..., T, dU] = [..., {horizon}, {d_u}]; received shape "
                       f"{lam.shape}.")
    batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(lam)[:-2])
  if nu is not None:
    nu = gaussians.to_float64(nu)
    if nu.shape.rank < 1 or nu.shape[-1] != horizon:
      raise ValueError(f"nu must be [..., T] = [..., {horizon}]; received shape {nu.shape}.")
    batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(nu)[:-1])
  eta = gaussians.to_float64(eta)
  batch_shape = tf.broadcast_dynamic_shape(batch_shape, tf.shape(eta))
  lam = tf.zeros([horizon, d_u], tf.float64) if lam is None else lam
  nu = tf.zeros([horizon], tf.float64) if nu is None else nu
  lam = tf.broadcast_to(lam, tf.concat([batch_shape, [horizon, d_u]], 0))
  nu = tf.broadcast_to(nu, tf.concat([batch_shape, [horizon]], 0))
  eta = tf.broadcast_to(eta, batch_shape)
  return cost, dynamics, prev_policy, pi_lin, lam, nu, eta


def backward_pass(cost: types.QuadraticCost, dynamics: types.LinearDynamics,
                  prev_policy, pi_lin, lam, nu, eta):
  """One modified-LQR backward pass (GPS.md 3.3) at a fixed eta.

  Backward over t = T-1..0 with V_T = 0, v_T = 0:

      Q = C_hat_t + rho_t F_t^T V_{t+1} F_t ;  q = c_hat_t + rho_t F_t^T (v_{t+1} + V_{t+1} f_t)
      K_t = -Q_uu^-1 Q_ux ;  k_t = -Q_uu^-1 q_u ;  G_t = Q_uu^-1
      V_t = Q_xx + Q_xu K_t (symmetrised) ;  v_t = q_x + Q_xu k_t

  Args:
    cost: quadratic cost, batch shape `...`.
    dynamics: linear-Gaussian dynamics (only F and f are used).
    prev_policy: psi_prev (`LinearGaussianPolicy`) or None (no eta term).
    pi_lin: the linearised global policy (`LinearGaussianPolicy`) or None (no nu term).
    lam: [..., T, dU] Lagrange multipliers, or None for zeros.
    nu: [..., T] weights of the KL to pi_lin, or None for zeros.
    eta: scalar or [...] weight of the KL to psi_prev (>= 0).

  Returns:
    `(policy, ok)`: the new `LinearGaussianPolicy` (float64) and a bool tensor of
    shape [...] that is True where every Q_uu Cholesky succeeded. Where it is
    False the policy holds NaNs.

  Raises:
    ValueError: when the shapes disagree.
  """
  args = _prepare(cost, dynamics, prev_policy, pi_lin, lam, nu, eta)
  return _backward_graph(*args)


def solve_with_eta_increase(cost, dynamics, prev_policy, pi_lin, lam, nu, eta,
                            max_eta=1e16):
  """`backward_pass`, raising eta where Q_uu is not positive definite.

  Where a Cholesky fails, eta <- eta + delta with delta = 1e-4, 2e-4, 4e-4, ...
  (per batch entry; entries that succeeded keep their eta).

  Args:
    cost, dynamics, prev_policy, pi_lin, lam, nu: as in `backward_pass`.
    eta: scalar or [...] starting eta.
    max_eta: eta at which to give up.

  Returns:
    `(policy, eta)`: the policy and the [...] numpy array of etas that worked.

  Raises:
    ValueError: when shapes disagree.
    FloatingPointError: when an entry still fails at eta >= max_eta.
  """
  args = _prepare(cost, dynamics, prev_policy, pi_lin, lam, nu, eta)
  policy, eta, _ = _solve_prepared(args, max_eta, with_kl=False)
  return policy, eta


def _solve_prepared(args, max_eta, with_kl):
  """Loop of `solve_with_eta_increase` on prepared args; optionally returns the KL."""
  *fixed, eta = args
  eta = np.array(eta, dtype=np.float64)
  delta = np.full_like(eta, INITIAL_ETA_INCREMENT)
  while True:
    eta_tensor = tf.constant(eta, tf.float64)
    if with_kl:
      policy, ok, kl = _backward_and_kl_graph(*fixed, eta_tensor)
    else:
      policy, ok = _backward_graph(*fixed, eta_tensor)
      kl = None
    failed = ~ok.numpy()
    if not failed.any():
      return policy, eta, kl
    if (eta[failed] >= max_eta).any():
      raise FloatingPointError(
          f"Q_uu is not positive definite even at eta={eta[failed].max():.3g} >= "
          f"max_eta={max_eta:.3g} (failed batch entries: {np.argwhere(failed).tolist()}). "
          "Check that the cost is convex in the action and the previous policy's G is SPD.")
    logging.log_every_n(logging.INFO, "LQR: Q_uu not positive definite at eta=%s; raising eta.",
                        20, eta[failed])
    eta = np.where(failed, eta + delta, eta)
    delta = np.where(failed, 2.0 * delta, delta)


def _check_eta_search(prev_policy, epsilon, min_eta, max_eta, max_iterations):
  """Raises ValueError for `eta_search` arguments it cannot use; returns epsilon as float64."""
  if prev_policy is None:
    raise ValueError("eta_search needs prev_policy (the KL constraint is to psi_prev); "
                     "received None.")
  if not 0.0 < min_eta < max_eta:
    raise ValueError(f"Need 0 < min_eta < max_eta; received min_eta={min_eta}, "
                     f"max_eta={max_eta}.")
  if max_iterations < 1:
    raise ValueError(f"max_iterations must be >= 1; received {max_iterations}.")
  epsilon_np = np.array(epsilon, dtype=np.float64)
  if not np.all(epsilon_np > 0.0):
    raise ValueError(f"epsilon must be > 0; received {epsilon}.")
  return epsilon_np


def _bracket_step(below, eta, low, high):
  """One step of `eta_search`'s bracket: `(low, high, next eta)` per entry.

  Where the KL is below its budget (`below`), eta becomes the bracket's upper
  end and the next eta max(sqrt(low high), 0.1 high); elsewhere eta becomes
  the lower end and the next eta min(sqrt(low high), 10 low).
  """
  new_high = np.where(below, eta, high)
  new_low = np.where(below, low, eta)
  geometric = np.sqrt(new_low * new_high)
  new_eta = np.where(below, np.maximum(geometric, 0.1 * new_high),
                     np.minimum(geometric, 10.0 * new_low))
  return new_low, new_high, new_eta


def eta_search(cost: types.QuadraticCost, dynamics: types.LinearDynamics,
               prev_policy: types.LinearGaussianPolicy, pi_lin, lam, nu, epsilon, eta0,
               min_eta=1e-8, max_eta=1e16, max_iterations=50) -> EtaSearchResult:
  """Dual gradient descent on eta toward KL(psi_new || psi_prev) = epsilon (GPS.md 3.3).

  Per batch entry, within the bracket [min_eta, max_eta]:

      if KL < epsilon: max <- eta; eta <- max(sqrt(min max), 0.1 max)
      else:            min <- eta; eta <- min(sqrt(min max), 10 min)

  stopping when |KL - epsilon| < 0.1 epsilon, after `max_iterations` backward
  passes, or when the bracket no longer moves eta (the constraint is slack at
  min_eta or still violated at max_eta; further passes would return the same
  policy). An eta raised by a failed Cholesky enters the bracket as raised.

  Args:
    cost, dynamics, pi_lin, lam, nu: as in `backward_pass`.
    prev_policy: psi_prev, the policy the KL constraint refers to (required).
    epsilon: scalar or [...] KL budget (> 0), e.g. T * kl_step * step_mult.
    eta0: scalar or [...] starting eta (clipped into [min_eta, max_eta]).
    min_eta: lower end of the bracket (> 0).
    max_eta: upper end of the bracket.
    max_iterations: maximum number of backward passes per entry.

  Returns:
    `EtaSearchResult(policy, eta, kl, iterations)`.

  Raises:
    ValueError: for a missing prev_policy or invalid epsilon/bracket/shapes.
    FloatingPointError: when a Cholesky fails even at max_eta.
  """
  epsilon_np = _check_eta_search(prev_policy, epsilon, min_eta, max_eta, max_iterations)
  args = _prepare(cost, dynamics, prev_policy, pi_lin, lam, nu,
                  np.clip(np.array(eta0, dtype=np.float64), min_eta, max_eta))
  *fixed, eta = args
  eta = np.array(eta, dtype=np.float64)
  epsilon_np = np.broadcast_to(epsilon_np, eta.shape)
  low = np.full_like(eta, min_eta)
  high = np.full_like(eta, max_eta)
  active = np.ones(eta.shape, bool)
  iterations = np.zeros(eta.shape, np.int64)
  for _ in range(max_iterations):
    # Entries that stopped keep their eta; re-solving them reproduces their policy.
    policy, solved_eta, kl = _solve_prepared((*fixed, eta), max_eta, with_kl=True)
    kl = kl.numpy()
    iterations = iterations + active
    converged = np.abs(kl - epsilon_np) < 0.1 * epsilon_np
    new_low, new_high, new_eta = _bracket_step(kl < epsilon_np, solved_eta, low, high)
    stuck = new_eta == solved_eta
    active = active & ~converged & ~stuck
    high = np.where(active, new_high, high)
    low = np.where(active, new_low, low)
    eta = np.where(active, new_eta, solved_eta)
    if not active.any():
      break
  else:
    logging.info("eta_search: %d of %d entries still have |KL - eps| >= 0.1 eps after %d "
                 "iterations.", int(np.sum(active)), active.size, max_iterations)
  return EtaSearchResult(policy=policy, eta=solved_eta, kl=kl, iterations=iterations)
