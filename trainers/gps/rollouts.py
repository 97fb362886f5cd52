"""Trajectories of the optimisation MDP and their local quadratic cost (GPS.md 1, 3.2).

A trajectory on one problem (a GPS "condition") starts at the problem's x0
with empty (zero) histories. At step t = 0..T-1 it evaluates the objective
f(x_t), its gradient and Hessian, forms the P1 state

    s_t = [x_t; r (H); past gradients (H d); g_t (d); past steps (H d)]

(`state_layout`; the observation the policy sees is s_t without x_t, built
exactly as `keras_l2o.rules.policy.PolicyRule.observe` builds it), takes the
action u_t = mean(t, s_t) + noise_t and moves to x_{t+1} = x_t + u_t.
Everything is float64 and batched over B trajectories of the same problem.

`expand_cost` turns the samples into the local quadratic cost of GPS.md 3.2:
c(s_t) = f(x_t) depends on the location block only.

Example:

  >>> import numpy as np, tensorflow as tf
  >>> from keras_l2o import problems
  >>> family = problems.get("logistic_regression", seed=0)
  >>> tensors = family.sample("train", 0).tensors
  >>> gd = lambda t, s: -0.5 * s[:, 129:133]  # d = 4, H = 25: the current gradient block
  >>> out = rollout(family, tensors, tf.zeros([1, 3, 4], tf.float64), gd, history=25)
  >>> out.states.shape.as_list(), bool(out.losses[0, -1] < out.losses[0, 0])
  ([1, 3, 233], True)
"""

from typing import NamedTuple

import tensorflow as tf

from keras_l2o.rules import policy as policy_lib
from . import types

_DTYPE = tf.float64


class Rollout(NamedTuple):
  """B sampled trajectories of T steps on one problem.

  Attributes:
    states: [B, T, dX] the GPS states s_0..s_{T-1}.
    actions: [B, T, d] the actions taken.
    losses: [B, T + 1] f(x_0)..f(x_T).
    grads: [B, T, d] gradients at x_0..x_{T-1}.
    hessians: [B, T, d, d] Hessians at x_0..x_{T-1}.
  """
  states: tf.Tensor
  actions: tf.Tensor
  losses: tf.Tensor
  grads: tf.Tensor
  hessians: tf.Tensor


def objective_fn(family, tensors):
  """f(x) of one problem for a flat float64 parameter vector x (the mean over its losses)."""
  batch = family.batch(tensors, 0)  # full-batch families: the same data at every step

  def objective(x):
    return tf.reduce_mean(family.losses(tensors, [x], batch))

  return objective


def value_grad_hessian(objective, points):
  """f, grad f and the Hessian of f at each row of `points` [B, d] (float64)."""

  def one(x):
    with tf.GradientTape() as outer:
      outer.watch(x)
      with tf.GradientTape() as inner:
        inner.watch(x)
        value = objective(x)
      grad = inner.gradient(value, x)
    return value, grad, outer.jacobian(grad, x)

  return tf.vectorized_map(one, points)


def linear_gaussian_mean(policy: types.LinearGaussianPolicy):
  """`mean(t, states)` of a batched linear-Gaussian policy K_t s + k_t.

  Args:
    policy: K [B or 1, T, dU, dX], k [B or 1, T, dU] (float64).
  """
  gains, offsets = tf.convert_to_tensor(policy.K, _DTYPE), tf.convert_to_tensor(policy.k, _DTYPE)

  def mean(t, states):
    return tf.linalg.matvec(gains[:, t], states) + offsets[:, t]

  return mean


def rollout(family, tensors, noise, mean_fn, history, x0=None):
  """Runs B trajectories of T = noise.shape[1] steps on one problem.

  Args:
    family: a full-batch `ProblemFamily` with one flat parameter vector.
    tensors: the problem's tensors (`Problem.tensors`).
    noise: [B, T, d] float64 additive action noise (e.g. chol(G_t) eps).
    mean_fn: `(t, states [B, dX]) -> [B, d]` mean action (t a scalar tensor).
    history: H, the history length of the state.
    x0: optional [d] starting point (default: the problem's x0).

  Returns:
    A `Rollout`.
  """
  noise = tf.convert_to_tensor(noise, _DTYPE)
  batch, horizon, d = noise.shape
  if x0 is None:
    (x0,) = family.init_params(tensors)
  x = tf.broadcast_to(tf.cast(tf.reshape(x0, [1, d]), _DTYPE), [batch, d])
  objective = objective_fn(family, tensors)
  h = int(history)
  changes = tf.zeros([batch, h], _DTYPE)
  past_grads = tf.zeros([batch, h, d], _DTYPE)
  past_steps = tf.zeros([batch, h, d], _DTYPE)
  previous = tf.zeros([batch], _DTYPE)
  outputs = [tf.TensorArray(_DTYPE, size=horizon) for _ in range(5)]
  for t in tf.range(horizon):
    loss, grad, hessian = value_grad_hessian(objective, x)
    change = policy_lib.relative_change(loss, previous, t > 0)
    changes = tf.concat([changes[:, 1:], change[:, None]], axis=1)
    state = tf.concat([x, changes, tf.reshape(past_grads, [batch, h * d]), grad,
                       tf.reshape(past_steps, [batch, h * d])], axis=1)
    action = mean_fn(t, state) + noise[:, t]
    values = (state, action, loss, grad, hessian)
    outputs = [ta.write(t, v) for ta, v in zip(outputs, values)]
    past_grads = tf.concat([past_grads[:, 1:], grad[:, None]], axis=1)
    past_steps = tf.concat([past_steps[:, 1:], action[:, None]], axis=1)
    previous = loss
    x = x + action
  final = tf.vectorized_map(objective, x)
  states, actions, losses, grads, hessians = (
      tf.transpose(ta.stack(), [1, 0] + list(range(2, ta.element_shape.rank + 1)))
      for ta in outputs)
  losses = tf.concat([losses, final[:, None]], axis=1)
  return Rollout(states, actions, losses, grads, hessians)


def expand_cost(samples: Rollout, dimension, action_dim) -> types.QuadraticCost:
  """The local quadratic cost of c(s_t) = f(x_t), averaged over the samples (GPS.md 3.2).

  Per sample, with y = [s_t; u_t] and H, g, l the Hessian, gradient and value
  at x_t (on the location block, zero elsewhere), re-centred at the sample:

      Cm = H,  cv = g - H y,  cc = l - g^T y + 1/2 y^T H y.

  Args:
    samples: a `Rollout` (or a batch of them with leading dimensions).
    dimension: d, the size of the location block (the first d state entries).
    action_dim: dU.

  Returns:
    `types.QuadraticCost` with Cm [..., T, dX + dU, dX + dU], cv [..., T, dX + dU],
    cc [..., T], the mean over the sample axis (the one before T).
  """
  states = tf.convert_to_tensor(samples.states, _DTYPE)
  d_x = states.shape[-1]
  d_xu = d_x + int(action_dim)
  x = states[..., :dimension]
  hess = tf.convert_to_tensor(samples.hessians, _DTYPE)
  grad = tf.convert_to_tensor(samples.grads, _DTYPE)
  loss = tf.convert_to_tensor(samples.losses, _DTYPE)[..., :-1]
  hx = tf.linalg.matvec(hess, x)
  small_cv = grad - hx
  cc = loss - tf.reduce_sum(grad * x, axis=-1) + 0.5 * tf.reduce_sum(x * hx, axis=-1)
  # Average over the samples first, then pad the location block to [x; u]: padding
  # every sample's d x d Hessian to (dX + dU)^2 would take gigabytes.
  sample_axis = states.shape.rank - 3
  hess, small_cv = (tf.reduce_mean(v, axis=sample_axis) for v in (hess, small_cv))
  rank = hess.shape.rank
  pad_m = [[0, 0]] * (rank - 2) + [[0, d_xu - dimension], [0, d_xu - dimension]]
  pad_v = [[0, 0]] * (rank - 2) + [[0, d_xu - dimension]]
  return types.QuadraticCost(Cm=tf.pad(hess, pad_m), cv=tf.pad(small_cv, pad_v),
                             cc=tf.reduce_mean(cc, axis=sample_axis))
