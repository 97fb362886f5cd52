"""The initial local policy: momentum written as a linear controller (GPS.md 3.7).

Truncated momentum with rate gamma and momentum m steps by

    u_t = -gamma sum_{i=0..H} m^i g_{t-i},

which is linear in the P1 state: gain -gamma I on the current gradient and
-gamma m^{H-j} I on past gradient j (j = 0 the oldest, so the previous step's
gradient gets m^1 and the oldest m^H; GPS.md writes m^{H+1-j} with j from 1).
The grid search picks gamma and m by the final objective of noiseless rollouts.

Example:
  >>> import numpy as np
  >>> policy = momentum_controller(horizon=2, dimension=1, history=2, rate=0.5, momentum=0.9)
  >>> np.round(policy.K.numpy()[0, 0], 3).tolist()  # [x, rel(2), g_{t-2}, g_{t-1}, g_t, deltas(2)]
  [0.0, 0.0, 0.0, -0.405, -0.45, -0.5, 0.0, 0.0]
"""

import math

from absl import logging
import numpy as np
import tensorflow as tf

from . import state_layout as layout_lib
from . import types

DEFAULT_RATES = tuple(0.025 * 2 ** i for i in range(7))  # 0.025, 0.05, ..., 1.6
DEFAULT_MOMENTA = tuple(round(0.82 + 0.01 * i, 2) for i in range(11))  # 0.82, 0.83, ..., 0.92


def momentum_controller(horizon, dimension, history, rate, momentum, variance=0.01, with_location=True):
  """The linear-Gaussian policy that takes truncated momentum steps.

  Args:
    horizon: T, number of time steps.
    dimension: d, the number of parameters (= dU, the action size).
    history: H, the state's history length.
    rate: gamma > 0.
    momentum: m in [0, 1).
    variance: G_t = variance * I (GPS.md: 0.01).
    with_location: whether the state starts with the location (see
      `state_layout.state_layout`).

  Returns:
    `types.LinearGaussianPolicy` with K [T, d, dX], k = 0 [T, d],
    G [T, d, d], float64; dX = `state_layout(dimension, history).size`.

  Raises:
    ValueError: on a non-positive horizon, rate or variance, or momentum
      outside [0, 1).
  """
  if int(horizon) != horizon or horizon < 1:
    raise ValueError(f"`horizon` must be a positive integer. Received: horizon={horizon}")
  if rate <= 0 or variance <= 0:
    raise ValueError(f"`rate` and `variance` must be > 0. Received: rate={rate}, variance={variance}")
  if not 0 <= momentum < 1:
    raise ValueError(f"`momentum` must be in [0, 1). Received: momentum={momentum}")
  layout = layout_lib.state_layout(dimension, history, with_location)
  gain = np.zeros([dimension, layout.size])
  eye = np.eye(dimension)
  gain[:, layout.current_gradient] = -rate * eye
  for j in range(history):
    gain[:, layout.past_gradient(j)] = -rate * momentum ** (history - j) * eye
  horizon = int(horizon)
  return types.LinearGaussianPolicy(
      K=tf.constant(np.broadcast_to(gain, [horizon, dimension, layout.size])),
      k=tf.zeros([horizon, dimension], tf.float64),
      G=tf.constant(np.broadcast_to(variance * eye, [horizon, dimension, dimension])))


def grid_search_momentum(rollout_fn, rates=DEFAULT_RATES, momenta=DEFAULT_MOMENTA):
  """Picks the (rate, momentum) whose rollout ends at the lowest objective.

  Args:
    rollout_fn: callable `(rate, momentum) -> final objective` (a float; e.g.
      the mean over a condition's noiseless rollouts). Non-finite results count
      as divergence and lose to any finite one.
    rates: candidate rates gamma (default 0.025 doubling to 1.6).
    momenta: candidate momenta (default 0.82 to 0.92 in steps of 0.01).

  Returns:
    `(rate, momentum, objective)` of the best pair (ties: the first in the
    order rates x momenta).

  Raises:
    ValueError: on an empty grid, or when every rollout is non-finite.
  """
  if not rates or not momenta:
    raise ValueError(f"`rates` and `momenta` must be non-empty. Received: rates={rates}, momenta={momenta}")
  best = None
  for rate in rates:
    for momentum in momenta:
      value = float(rollout_fn(rate, momentum))
      logging.vlog(1, "momentum grid: rate=%g momentum=%g final objective=%g", rate, momentum, value)
      if math.isfinite(value) and (best is None or value < best[2]):
        best = (rate, momentum, value)
  if best is None:
    raise ValueError(f"Every rollout of the momentum grid diverged (rates={rates}, momenta={momenta}).")
  return best
