"""Coordinate groups (GPS.md section 2): per-coordinate states, rollouts and costs.

A group is one weight tensor or bias vector of the trained net. Within a group,
dynamics, cost and local controllers are tied across coordinates and
block-diagonal: coordinate j's next state depends on its own state and action
only. The coordinates of a group are therefore extra samples of one small
linear-quadratic-Gaussian problem with action dimension 1, and the LQR is
batched over groups (and training problems).

The per-coordinate state s (size `STATE_SIZE`), used only at training time by
the local controllers, is

    [g_t, e_0.5(g)_t, e_0.9(g)_t, e_0.98(g)_t, dx_{t-1}, e_0.9(dx)_{t-1}]

with e_b(v)_t = b e_b(v)_{t-1} + (1 - b) v_t, e_b(v)_{-1} = 0 (exponentially
averaged histories; P2 uses block averages at stride 5: exponential averages
follow a linear recursion, so the per-coordinate dynamics stay closer to
linear, and heavy-ball momentum with momentum b is exactly the controller
dx_t = -gamma e_b(g)_t / (1 - b)). The policy itself sees the P2 observation
(`keras_l2o.rules.coordinate_policy.observe`) and its LSTM memory.

Cost. The meta-loss is sum_{t=1..T} f(x_t) = T f(x_0) + sum_t (T - t) df_t with
df_t = f(x_{t+1}) - f(x_t) = g_t . u_t + 1/2 u_t^T H u_t + O(|u|^3). The
gradient is in the state; for the second-order term the rollouts measure the
curvature along each step on that step's minibatch,
h_t = 2 (f_t(x_t + u_t) - f_t(x_t) - g_t . u_t) / |u_t|^2, so that
sum_j (g_j u_j + 1/2 h_t u_j^2) is the objective's change along the step (to
second order, including the coupling between coordinates that a per-coordinate
Hessian diagonal would miss: it is what makes too long steps costly). Each
coordinate's share of the meta-loss is then

    c_t(s, u) = w_t (g u + 1/2 max(h_t, 0) u^2),   w_t = (T - t) / T,

a quadratic cost with a state-action cross term (`group_cost`), h_t averaged
over the samples of a training problem.

Scales. Gradients and steps of a net are 1e-4 to 1e-1; the LQR works in
units where each state feature and the action have unit spread on the initial
controller's trajectories (`state_scale`, `action_scale` per problem and
group), and the cost is multiplied by `cost_scale` so that its mean |c_t| there
is 1.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_l2o.rules import coordinate_policy
from . import policy_class
from . import types

GRADIENT_DECAYS = (0.5, 0.9, 0.98)
STEP_DECAY = 0.9
STATE_SIZE = 2 + len(GRADIENT_DECAYS) + 1
GRADIENT_INDEX = 0
_F64 = tf.float64


def momentum_gain(rate: float, momentum: float) -> np.ndarray:
  """The raw-unit gain [STATE_SIZE] of heavy-ball momentum, dx = gain . s.

  `momentum` 0 is gradient descent (-rate g); otherwise it must be one of
  `GRADIENT_DECAYS`, and dx = -rate e_b(g) / (1 - b) = -rate sum_i b^i g_{t-i}.

  Raises:
    ValueError: for a momentum that the state cannot express.
  """
  gain = np.zeros(STATE_SIZE)
  if momentum == 0:
    gain[GRADIENT_INDEX] = -rate
  elif momentum in GRADIENT_DECAYS:
    gain[1 + GRADIENT_DECAYS.index(momentum)] = -rate / (1.0 - momentum)
  else:
    raise ValueError(f"`momentum` must be 0 or one of {list(GRADIENT_DECAYS)} (the exponential "
                     f"averages in the state). Received: momentum={momentum!r}")
  return gain


class GroupLayout(NamedTuple):
  """Where each group's coordinates sit in the flat parameter vector.

  Attributes:
    shapes: the variables' shapes, one group each.
    sizes: their numbers of coordinates.
    group_ids: [D] int32, the group of each flat coordinate.
    tracked: [G, S] int32 flat indices of the coordinates recorded per group
      (S per group, drawn with replacement when a group is smaller than S).
  """
  shapes: tuple
  sizes: tuple
  group_ids: np.ndarray
  tracked: np.ndarray


def group_layout(shapes, coordinates_per_group: int, seed) -> GroupLayout:
  """The `GroupLayout` of variables of `shapes`, tracking a seeded subset of each group.

  Example:

  >>> layout = group_layout([(2, 3), (3,)], 4, seed=0)
  >>> layout.sizes, layout.group_ids.tolist()
  ((6, 3), [0, 0, 0, 0, 0, 0, 1, 1, 1])
  >>> bool(((layout.tracked[1] >= 6) & (layout.tracked[1] < 9)).all())
  True
  """
  shapes = tuple(tuple(int(d) for d in s) for s in shapes)
  sizes = tuple(int(np.prod(s)) for s in shapes)
  rng = np.random.default_rng(seed)
  starts = np.cumsum((0,) + sizes[:-1])
  tracked = np.stack([start + rng.choice(size, coordinates_per_group,
                                         replace=size < coordinates_per_group)
                      for start, size in zip(starts, sizes)]).astype(np.int32)
  group_ids = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
  return GroupLayout(shapes, sizes, group_ids, tracked)


class GroupRollout(NamedTuple):
  """Trajectories of one problem, tracked coordinates only.

  Attributes:
    states: [B, G, S, T, STATE_SIZE] raw-unit per-coordinate states.
    actions: [B, G, S, T] the steps taken.
    observations: [B, G, S, T, F] the policy's observations (P2's: F = 3).
    losses: [B, T + 1] f(x_0..x_T) on the minibatches of steps 0..T.
    curvatures: [B, T] the objective's curvature along each step,
      2 (f_t(x_t + dx_t) - f_t(x_t) - g_t . dx_t) / |dx_t|^2 on step t's
      minibatch (0 for a zero step).
  """
  states: tf.Tensor
  actions: tf.Tensor
  observations: tf.Tensor
  losses: tf.Tensor
  curvatures: tf.Tensor


def controller_step(gains, offsets, stddevs, group_ids, states, noise):
  """Steps of a group-tied linear-Gaussian controller for every coordinate.

  dx_j = K_{g(j)} . s_j + k_{g(j)} + std_{g(j)} eps_j: permuting the
  coordinates of a group permutes the steps.

  Args:
    gains: [G, STATE_SIZE]; offsets, stddevs: [G].
    group_ids: [D] int32.
    states: [D, STATE_SIZE].
    noise: [D] standard normal draws.

  Returns:
    [D] steps.
  """
  return (tf.reduce_sum(tf.gather(gains, group_ids) * states, axis=-1)
          + tf.gather(offsets, group_ids) + tf.gather(stddevs, group_ids) * noise)


def _flat_initial_params(family, tensors):
  """The problem's initial parameters as one flat float32 vector."""
  return tf.concat([tf.reshape(tf.cast(p, tf.float32), [-1])
                    for p in family.init_params(tensors)], 0)


def _flat_objective(family, tensors, layout: GroupLayout):
  """`(unflatten, value_and_grad)` of one problem over its flat parameter vector x."""

  def unflatten(x):
    parts = tf.split(x, list(layout.sizes))
    return [tf.reshape(p, s) for p, s in zip(parts, layout.shapes)]

  def value_and_grad(x, batch_t):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = family.loss(tensors, unflatten(x), batch_t)
    return loss, tape.gradient(loss, x)

  return unflatten, value_and_grad


def _step_curvature(family, tensors, unflatten, x, step, loss, grad, batch_t):
  """The objective's curvature along `step` from x: 2 (f(x + step) - f - g.step) / |step|^2."""
  squared = tf.reduce_sum(tf.square(step))
  moved = family.loss(tensors, unflatten(x + step), batch_t)
  return tf.math.divide_no_nan(2.0 * (moved - loss - tf.reduce_sum(grad * step)), squared)


def _by_group(v, batch, horizon, num_groups, per_group):
  """[B, T, G S, ...] -> [B, G, S, T, ...]."""
  v = tf.reshape(v, tf.concat([[batch, horizon, num_groups, per_group], tf.shape(v)[3:]], 0))
  perm = [0, 2, 3, 1] + list(range(4, v.shape.rank))
  return tf.transpose(v, perm)


def rollout(family, tensors, layout: GroupLayout, gains, offsets, stddevs, seeds, observer=None):
  """Runs len(seeds) trajectories of a linear-Gaussian group controller on one problem.

  Args:
    family: a `ProblemFamily` (minibatch `batch(tensors, t)` at step t).
    tensors: the problem's tensors; starts from `family.init_params(tensors)`.
    layout: the problem's `GroupLayout`.
    gains: [T, G, STATE_SIZE] raw-unit gains; offsets, stddevs: [T, G].
    seeds: [B, 2] int32 seeds of the action noise (zero stddevs: noiseless).
    observer: a `policy_class.Observer`, the policy's observation; default:
      the P2 observation of `gps_lstm`.

  Returns:
    A `GroupRollout` (float32).
  """
  gains, offsets, stddevs = (tf.cast(v, tf.float32) for v in (gains, offsets, stddevs))
  horizon = int(gains.shape[0])
  group_ids = tf.constant(layout.group_ids)
  tracked = tf.reshape(tf.constant(layout.tracked), [-1])
  num_groups, per_group = layout.tracked.shape
  x0 = _flat_initial_params(family, tensors)
  dim, batch = int(x0.shape[0]), int(seeds.shape[0])
  if observer is None:
    observer = policy_class.observer(coordinate_policy.CoordinatePolicyRule(), layout.sizes)

  unflatten, value_and_grad = _flat_objective(family, tensors, layout)

  def one(seed):
    zeros = tf.zeros([dim])
    x, averages = x0, [zeros] * len(GRADIENT_DECAYS)
    previous_loss, previous_grad = tf.constant(0.0), zeros
    previous_step, step_before, step_average = zeros, zeros, zeros
    observer_state = observer.init(dim)
    arrays = [tf.TensorArray(tf.float32, size=horizon) for _ in range(5)]
    for t in tf.range(horizon):
      batch_t = family.batch(tensors, t)
      loss, grad = value_and_grad(x, batch_t)
      averages = [b * a + (1.0 - b) * grad for a, b in zip(averages, GRADIENT_DECAYS)]
      state = tf.stack([grad, *averages, previous_step, step_average], axis=-1)
      obs, observer_state = observer.observe(loss, previous_loss, t > 0, grad, previous_grad,
                                             previous_step, step_before, observer_state)
      noise = tf.random.stateless_normal([dim], seed=seed + tf.stack([0, t]))
      step = controller_step(gains[t], offsets[t], stddevs[t], group_ids, state, noise)
      curvature = _step_curvature(family, tensors, unflatten, x, step, loss, grad, batch_t)
      arrays = [ta.write(t, v) for ta, v in zip(
          arrays, (tf.gather(state, tracked), tf.gather(step, tracked), tf.gather(obs, tracked),
                   loss, curvature))]
      step_average = STEP_DECAY * step_average + (1.0 - STEP_DECAY) * step
      step_before, previous_step = previous_step, step
      previous_grad, previous_loss = grad, loss
      x = x + step
    final = family.loss(tensors, unflatten(x), family.batch(tensors, horizon))
    states, steps, obs, losses, curvatures = (a.stack() for a in arrays)
    return (states, steps, obs, tf.concat([losses, final[None]], 0), curvatures)

  outs = [one(seeds[i]) for i in range(batch)]
  states, steps, obs, losses, curvatures = (tf.stack(v) for v in zip(*outs))

  by_group = lambda v: _by_group(v, batch, horizon, num_groups, per_group)  # noqa: E731
  return GroupRollout(by_group(states), by_group(steps), by_group(obs), losses, curvatures)


def group_cost(curvature, cost_scale, horizon: int) -> types.QuadraticCost:
  """c_t([s; u]) = cost_scale w_t (s_g u + 1/2 h_t u^2) in the LQR's units.

  Args:
    curvature: [..., T] h_t >= 0 in the LQR's units (the measured curvature
      along the steps, times action_scale / gradient_scale).
    cost_scale: [...] positive multipliers.
    horizon: T (w_t = (T - t) / T).

  Returns:
    `types.QuadraticCost` [..., T] (no linear or constant terms).

  Example:

  >>> import numpy as np
  >>> cost = group_cost(np.array([[2.0, 2.0]]), np.array([1.0]), 2)
  >>> y = np.array([0, 0, 0, 0, 0, 0, 0.0])
  >>> y[0], y[6] = 3.0, -0.5   # g = 3, u = -0.5: g u + h u^2 / 2 = -1.25
  >>> float(0.5 * y @ cost.Cm.numpy()[0, 0] @ y)
  -1.25
  """
  curvature = tf.convert_to_tensor(curvature, _F64)
  d_y = STATE_SIZE + 1
  u_index = STATE_SIZE
  weights = (horizon - tf.range(horizon, dtype=_F64)) / horizon
  scale = tf.convert_to_tensor(cost_scale, _F64)[..., tf.newaxis] * weights  # [..., T]
  cross = tf.one_hot(GRADIENT_INDEX * d_y + u_index, d_y * d_y, dtype=_F64) + tf.one_hot(
      u_index * d_y + GRADIENT_INDEX, d_y * d_y, dtype=_F64)
  corner = tf.one_hot(u_index * d_y + u_index, d_y * d_y, dtype=_F64)
  matrix = scale[..., tf.newaxis] * (cross + curvature[..., tf.newaxis] * corner)
  matrix = tf.reshape(matrix, tf.concat([tf.shape(scale), [d_y, d_y]], 0))
  return types.QuadraticCost(Cm=matrix, cv=tf.zeros_like(matrix[..., 0]),
                             cc=tf.zeros_like(scale))
