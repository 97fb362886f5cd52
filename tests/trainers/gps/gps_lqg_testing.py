"""Random linear-quadratic-Gaussian systems and numpy rollouts for the GPS tests.

Everything here is plain numpy (float64), independent of `trainers.gps`, so
the tests can compare the TensorFlow code against it.
"""

import numpy as np
import tensorflow as tf

from trainers.gps import types


def random_spd(rng, size, scale=1.0, floor=0.1, batch=()):
  """A random symmetric positive definite matrix (batch + [size, size])."""
  root = rng.normal(size=batch + (size, size)) / np.sqrt(size)
  return scale * (root @ np.swapaxes(root, -1, -2)) + floor * np.eye(size)


def random_policy(rng, horizon, d_x, d_u, gain=0.3, noise=0.2, batch=()):
  """A random `LinearGaussianPolicy` as numpy arrays."""
  return types.LinearGaussianPolicy(
      K=gain * rng.normal(size=batch + (horizon, d_u, d_x)),
      k=gain * rng.normal(size=batch + (horizon, d_u)),
      G=random_spd(rng, d_u, scale=noise, floor=0.5 * noise, batch=batch + (horizon,)))


def random_dynamics(rng, horizon, d_x, d_u, batch=()):
  """Stable random `LinearDynamics` (x' = A x + B u + f + noise) as numpy arrays."""
  a = 0.8 * np.eye(d_x) + 0.2 * rng.normal(size=batch + (horizon, d_x, d_x)) / np.sqrt(d_x)
  b = 0.5 * rng.normal(size=batch + (horizon, d_x, d_u))
  return types.LinearDynamics(
      F=np.concatenate([a, b], axis=-1),
      f=0.1 * rng.normal(size=batch + (horizon, d_x)),
      W=random_spd(rng, d_x, scale=0.05, floor=0.01, batch=batch + (horizon,)),
      x0_mean=rng.normal(size=batch + (d_x,)),
      x0_cov=random_spd(rng, d_x, scale=0.3, floor=0.05, batch=batch))


def random_cost(rng, horizon, d_x, d_u, batch=()):
  """A random strictly convex `QuadraticCost` as numpy arrays."""
  return types.QuadraticCost(
      Cm=random_spd(rng, d_x + d_u, scale=1.0, floor=0.5, batch=batch + (horizon,)),
      cv=rng.normal(size=batch + (horizon, d_x + d_u)),
      cc=rng.normal(size=batch + (horizon,)))


def to_tensors(structure):
  """numpy NamedTuple (or None) -> float64 tensors."""
  if structure is None:
    return None
  return tf.nest.map_structure(lambda x: tf.constant(x, tf.float64), structure)


def to_numpy(structure):
  return tf.nest.map_structure(lambda x: np.asarray(x), structure)


def rollouts(rng, policy, dynamics, num_samples):
  """Samples trajectories of an unbatched system.

  Returns:
    `(x, u)` with x [N, T, dX] and u [N, T, dU].
  """
  horizon, d_u, d_x = policy.K.shape
  x = rng.multivariate_normal(dynamics.x0_mean, dynamics.x0_cov, size=num_samples)
  xs, us = [], []
  for t in range(horizon):
    u = x @ policy.K[t].T + policy.k[t] + rng.normal(size=(num_samples, d_u)) @ np.linalg.cholesky(
        policy.G[t]).T
    xs.append(x)
    us.append(u)
    xu = np.concatenate([x, u], axis=1)
    x = (xu @ dynamics.F[t].T + dynamics.f[t]
         + rng.normal(size=(num_samples, d_x)) @ np.linalg.cholesky(dynamics.W[t]).T)
  return np.stack(xs, axis=1), np.stack(us, axis=1)


def gaussian_log_density(value, mean, cov):
  """log N(value; mean, cov) over the last axis (numpy, batched over leading axes)."""
  diff = value - mean
  dim = value.shape[-1]
  solved = np.linalg.solve(cov, diff[..., None])[..., 0]
  _, logdet = np.linalg.slogdet(cov)
  return -0.5 * (np.sum(diff * solved, axis=-1) + logdet + dim * np.log(2.0 * np.pi))


def assert_within_standard_errors(test, estimate, standard_error, expected, bound, what):
  """Asserts |estimate - expected| <= bound * standard_error elementwise."""
  z = np.abs(np.asarray(estimate) - np.asarray(expected)) / np.asarray(standard_error)
  test.assertLessEqual(float(np.max(z)), bound, f"{what}: max |z| = {np.max(z):.2f}")
  return float(np.max(z))
