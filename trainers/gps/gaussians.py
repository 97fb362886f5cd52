"""Closed-form Gaussian quantities of linear-Gaussian trajectories (GPS.md 3.3).

A local policy psi and linear dynamics give Gaussian state and state-action
marginals at every time step. This module computes them (`forward_marginals`),
the expected KL divergence between two linear-Gaussian policies under those
marginals (`policy_kl`, `trajectory_kl`) and the LQG-predicted expected cost
(`expected_cost`). Everything is float64 and batched over leading dimensions.

Example:

  >>> import tensorflow as tf
  >>> from trainers.gps import types
  >>> one = tf.ones([1, 1, 1], tf.float64)
  >>> policy = types.LinearGaussianPolicy(K=0 * one, k=tf.zeros([1, 1], tf.float64), G=one)
  >>> dynamics = types.LinearDynamics(F=tf.ones([1, 1, 2], tf.float64),
  ...     f=tf.zeros([1, 1], tf.float64), W=one, x0_mean=tf.ones([1], tf.float64),
  ...     x0_cov=tf.ones([1, 1], tf.float64))
  >>> marginals = forward_marginals(policy, dynamics)
  >>> float(marginals.xu_cov[0, 1, 1])  # Var(u_0) = K Var(x_0) K^T + G
  1.0
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import types

tfd = tfp.distributions


class Marginals(NamedTuple):
  """Gaussian marginals of a linear-Gaussian policy under linear dynamics.

  Attributes:
    x_mean: [..., T, dX] means of x_t.
    x_cov: [..., T, dX, dX] covariances of x_t.
    xu_mean: [..., T, dX + dU] means of [x_t; u_t].
    xu_cov: [..., T, dX + dU, dX + dU] covariances of [x_t; u_t].
  """
  x_mean: tf.Tensor
  x_cov: tf.Tensor
  xu_mean: tf.Tensor
  xu_cov: tf.Tensor


def to_float64(value):
  """A float64 tensor of `value` (Python floats and lists never pass through float32)."""
  if isinstance(value, (tf.Tensor, tf.Variable)):
    return tf.cast(value, tf.float64)
  return tf.constant(np.asarray(value, dtype=np.float64))


def as_float64(structure):
  """`to_float64` on every leaf of a NamedTuple (or tuple) structure; keeps None."""
  return tf.nest.map_structure(lambda x: None if x is None else to_float64(x), structure)


def symmetrize(matrix):
  """(A + A^T) / 2 over the last two axes."""
  return 0.5 * (matrix + tf.linalg.matrix_transpose(matrix))


def time_major(x, event_rank):
  """Moves the time axis (just before the last `event_rank` axes) to the front."""
  rank = x.shape.rank
  axis = rank - event_rank - 1
  if axis < 0:
    raise ValueError(f"Expected a tensor with a time axis and {event_rank} event axes; "
                     f"received shape {x.shape}.")
  perm = [axis] + list(range(axis)) + list(range(axis + 1, rank))
  return tf.transpose(x, perm)


def batch_major(x, event_rank):
  """Inverse of `time_major`: moves the leading time axis back before the event axes."""
  rank = x.shape.rank
  axis = rank - event_rank - 1
  perm = list(range(1, axis + 1)) + [0] + list(range(axis + 1, rank))
  return tf.transpose(x, perm)


def _check_policy_dynamics(policy, dynamics):
  """Raises ValueError when the policy and dynamics sizes disagree."""
  d_u, d_x = policy.K.shape[-2], policy.K.shape[-1]
  if dynamics.F.shape[-1] != d_x + d_u or dynamics.F.shape[-2] != d_x:
    raise ValueError(
        f"Dynamics F must be [..., T, dX, dX + dU] = [..., T, {d_x}, {d_x + d_u}] for a "
        f"policy with K of shape {policy.K.shape}; received F of shape {dynamics.F.shape}.")
  if dynamics.F.shape[-3] != policy.K.shape[-3]:
    raise ValueError(f"Policy and dynamics horizons differ: K has T={policy.K.shape[-3]}, "
                     f"F has T={dynamics.F.shape[-3]}.")


def forward_marginals(policy: types.LinearGaussianPolicy,
                      dynamics: types.LinearDynamics) -> Marginals:
  """Propagates the state distribution through the policy and dynamics.

  For t = 0..T-1, with x_0 ~ N(x0_mean, x0_cov):

      mu_u = K mu_x + k,  Sigma_xu = Sigma_x K^T,  Sigma_u = K Sigma_x K^T + G
      mu_{t+1} = F mu_xu + f,  Sigma_{t+1} = F Sigma_xu,xu F^T + W

  Args:
    policy: the linear-Gaussian policy, batch shape `...`.
    dynamics: linear-Gaussian dynamics with the same batch shape (or broadcastable
      `...` of equal rank).

  Returns:
    `Marginals` of x_t and [x_t; u_t] for t = 0..T-1 (float64).

  Raises:
    ValueError: when the sizes of `policy` and `dynamics` disagree.
  """
  policy = as_float64(policy)
  dynamics = as_float64(dynamics)
  _check_policy_dynamics(policy, dynamics)
  elems = (time_major(policy.K, 2), time_major(policy.k, 1), time_major(policy.G, 2),
           time_major(dynamics.F, 2), time_major(dynamics.f, 1), time_major(dynamics.W, 2))

  def step(carry, inputs):
    mean, cov = carry[0], carry[1]
    gain, offset, noise, transition, drift, dyn_noise = inputs
    u_mean = tf.linalg.matvec(gain, mean) + offset
    xu_cross = tf.linalg.matmul(cov, gain, transpose_b=True)  # Cov(x, u)
    u_cov = tf.linalg.matmul(gain, xu_cross) + noise
    xu_mean = tf.concat([mean, u_mean], axis=-1)
    xu_cov = tf.concat([tf.concat([cov, xu_cross], axis=-1),
                        tf.concat([tf.linalg.matrix_transpose(xu_cross), u_cov], axis=-1)],
                       axis=-2)
    xu_cov = symmetrize(xu_cov)
    next_mean = tf.linalg.matvec(transition, xu_mean) + drift
    next_cov = symmetrize(
        tf.linalg.matmul(transition, tf.linalg.matmul(xu_cov, transition, transpose_b=True))
        + dyn_noise)
    return next_mean, next_cov, mean, cov, xu_mean, xu_cov

  batch_shape = tf.broadcast_dynamic_shape(tf.shape(policy.K)[:-3],
                                           tf.shape(dynamics.F)[:-3])
  d_x = policy.K.shape[-1]
  d_u = policy.K.shape[-2]
  mean0 = tf.broadcast_to(dynamics.x0_mean, tf.concat([batch_shape, [d_x]], 0))
  cov0 = tf.broadcast_to(dynamics.x0_cov, tf.concat([batch_shape, [d_x, d_x]], 0))
  zeros_xu = tf.zeros(tf.concat([batch_shape, [d_x + d_u]], 0), tf.float64)
  init = (mean0, cov0, mean0, cov0, zeros_xu, tf.zeros(
      tf.concat([batch_shape, [d_x + d_u, d_x + d_u]], 0), tf.float64))
  _, _, x_mean, x_cov, xu_mean, xu_cov = tf.scan(step, elems, initializer=init)
  return Marginals(x_mean=batch_major(x_mean, 1), x_cov=batch_major(x_cov, 2),
                   xu_mean=batch_major(xu_mean, 1), xu_cov=batch_major(xu_cov, 2))


def policy_kl(new: types.LinearGaussianPolicy, old: types.LinearGaussianPolicy,
              x_mean, x_cov):
  """Per-step expected KL, E_{x ~ N(x_mean, x_cov)} KL(new(.|x) || old(.|x)).

  With dK = K_new - K_old the mean difference depends on x, and

      E_x KL = KL(N(K_new m + k_new, G_new) || N(K_old m + k_old, G_old))
               + 1/2 tr(dK^T G_old^-1 dK Sigma_x).

  The first term is `tfp.distributions.kl_divergence` of two
  `MultivariateNormalTriL` at the mean state m.

  Args:
    new: policy with batch shape `...` and horizon T.
    old: policy of the same sizes.
    x_mean: [..., T, dX] state means.
    x_cov: [..., T, dX, dX] state covariances.

  Returns:
    [..., T] expected KL divergence per time step (float64).

  Raises:
    ValueError: when the policies' sizes disagree.
  """
  new, old = as_float64(new), as_float64(old)
  x_mean, x_cov = as_float64((x_mean, x_cov))
  if new.K.shape[-2:] != old.K.shape[-2:] or new.K.shape[-3] != old.K.shape[-3]:
    raise ValueError(f"Policies must have equal T, dU, dX; received K of shapes "
                     f"{new.K.shape} (new) and {old.K.shape} (old).")
  old_chol = tf.linalg.cholesky(old.G)
  new_dist = tfd.MultivariateNormalTriL(
      loc=tf.linalg.matvec(new.K, x_mean) + new.k, scale_tril=tf.linalg.cholesky(new.G))
  old_dist = tfd.MultivariateNormalTriL(
      loc=tf.linalg.matvec(old.K, x_mean) + old.k, scale_tril=old_chol)
  at_mean = tfd.kl_divergence(new_dist, old_dist)
  gain_diff = new.K - old.K
  weighted = tf.linalg.cholesky_solve(old_chol, gain_diff)  # G_old^-1 dK
  gain_term = tf.linalg.matmul(gain_diff, weighted, transpose_a=True)  # dK^T G_old^-1 dK
  trace = tf.einsum("...ij,...ji->...", gain_term, x_cov)
  return at_mean + 0.5 * trace


def trajectory_kl(new: types.LinearGaussianPolicy, old: types.LinearGaussianPolicy,
                  dynamics: types.LinearDynamics):
  """Sum_t max(0, E_{x_t ~ p_new} KL(new(.|x_t) || old(.|x_t))) (GPS.md 3.3).

  The states are distributed as under `new` running in `dynamics`.

  Args:
    new: the new local policy, batch shape `...`.
    old: the previous local policy.
    dynamics: the linear-Gaussian dynamics.

  Returns:
    [...] total expected KL (float64).
  """
  marginals = forward_marginals(new, dynamics)
  per_step = policy_kl(new, old, marginals.x_mean, marginals.x_cov)
  return tf.reduce_sum(tf.maximum(per_step, 0.0), axis=-1)


def expected_cost(policy: types.LinearGaussianPolicy, dynamics: types.LinearDynamics,
                  cost: types.QuadraticCost, marginals: Marginals = None):
  """LQG-predicted total cost Sum_t E[c_t(x_t, u_t)].

  For y ~ N(mu, Sigma): E[1/2 y^T C y + c^T y + cc] = 1/2 (mu^T C mu + tr(C Sigma)) + c^T mu + cc.

  Args:
    policy: the local policy, batch shape `...`.
    dynamics: the linear-Gaussian dynamics.
    cost: the quadratic cost.
    marginals: optional precomputed `forward_marginals(policy, dynamics)`.

  Returns:
    [...] expected total cost (float64).
  """
  cost = as_float64(cost)
  if marginals is None:
    marginals = forward_marginals(policy, dynamics)
  mean, cov = marginals.xu_mean, marginals.xu_cov
  if cost.Cm.shape[-1] != mean.shape[-1]:
    raise ValueError(f"Cost Cm must be [..., T, dX + dU, dX + dU] with dX + dU = "
                     f"{mean.shape[-1]}; received shape {cost.Cm.shape}.")
  quadratic = tf.einsum("...i,...ij,...j->...", mean, cost.Cm, mean)
  trace = tf.einsum("...ij,...ji->...", cost.Cm, cov)
  per_step = 0.5 * (quadratic + trace) + tf.einsum("...i,...i->...", cost.cv, mean) + cost.cc
  return tf.reduce_sum(per_step, axis=-1)
