"""The containers GPS passes between its pieces (all float64 tensors).

Shapes use T (time steps), dX (state size), dU (action size), and an optional
leading batch shape `...` (conditions, or coordinate groups in the
coordinatewise setting of GPS.md section 2). Every function in `trainers.gps`
accepts and returns these NamedTuples, batched over any leading dimensions.
"""

from typing import NamedTuple

import tensorflow as tf


class LinearGaussianPolicy(NamedTuple):
  """psi_t(u | x) = N(K_t x + k_t, G_t) for t = 0..T-1.

  Attributes:
    K: [..., T, dU, dX] feedback gains.
    k: [..., T, dU] open-loop terms.
    G: [..., T, dU, dU] action covariances (symmetric positive definite).
  """
  K: tf.Tensor
  k: tf.Tensor
  G: tf.Tensor


class LinearDynamics(NamedTuple):
  """x_{t+1} ~ N(F_t [x_t; u_t] + f_t, W_t), x_0 ~ N(x0_mean, x0_cov).

  Attributes:
    F: [..., T, dX, dX + dU].
    f: [..., T, dX].
    W: [..., T, dX, dX] noise covariances.
    x0_mean: [..., dX].
    x0_cov: [..., dX, dX].
  """
  F: tf.Tensor
  f: tf.Tensor
  W: tf.Tensor
  x0_mean: tf.Tensor
  x0_cov: tf.Tensor


class QuadraticCost(NamedTuple):
  """c_t(y) = 1/2 y^T Cm_t y + cv_t^T y + cc_t with y = [x_t; u_t].

  Attributes:
    Cm: [..., T, dX + dU, dX + dU].
    cv: [..., T, dX + dU].
    cc: [..., T].
  """
  Cm: tf.Tensor
  cv: tf.Tensor
  cc: tf.Tensor
