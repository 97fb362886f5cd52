"""The Li & Malik policy (P1, "Learning to Optimize") as a rule: its mean is the step.

The policy sees all d coordinates of ONE flat parameter vector at once. At
step t, with objective f_t and gradient g_t at the current iterate x_t, its
observation is (histories of length H, left-padded with zeros, oldest first)

    o_t = [r_{t-H+1}, ..., r_t,                   relative objective changes  (H)
           g_{t-H}, ..., g_{t-1},                 past gradients            (H d)
           g_t,                                   current gradient            (d)
           dx_{t-H}, ..., dx_{t-1}]               past steps                (H d)

with r_i = (f_i - f_{i-1}) / f_{i-1} (0 at the first step, which has no
f_{i-1}; |f_{i-1}| floored at 1e-12). The location x_t never enters: it only
enters the cost. The size is H + d (2H + 1): 229 for d = 4, H = 25 (the GPS
state adds x_t to it: 233). The action is

    dx_t = mu(o_t) = W_out a(... a(W_1 z + b_1) ...) + b_out,
    z = (o_t - obs_mean) / max(obs_std, 1e-3),

a Gaussian policy N(mu(o), diag(exp(log_variance))) of which the rule applies
the mean (use learning_rate 1). The steps kept in the history are the rule's
outputs (what the policy chose); guided policy search, which applies other
actions, calls `next_state` with the actions it took.

Meta-parameters: `normalizer/mean`, `normalizer/std` (the standardisation of
the observation; identity at initialisation), `hidden_<i>/kernel|bias`,
`output/kernel|bias` and `log_variance` (the diagonal of Sigma_pi, not used by
the mean).

Initialisation: `init_meta_params(seed)` gives a policy whose mean is exactly
`-init_step * g_t`, so it descends before any training: units 0..d-1 of each
hidden layer carry +g_t and units d..2d-1 carry -g_t (a(u) - a(-u) = u for
ReLU and softplus), the output reads -init_step (a(g) - a(-g)); every other
hidden unit has random input weights and zero output weights. This needs at
least 2 d units per hidden layer.

State per coordinate of the variable (histories along a trailing axis of H):
`relative_changes` (the same H numbers for every coordinate), `gradients`,
`steps`, and `previous_loss`; 3 H + 1 floats per parameter.

References:
  Li, K. & Malik, J. Learning to Optimize. ICLR 2017 (arXiv:1606.01885).
"""

import math

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base

ACTIVATIONS = {"relu": tf.nn.relu, "softplus": tf.nn.softplus}
STD_FLOOR = 1e-3
LOSS_FLOOR = 1e-12


def observation_size(dimension: int, history: int) -> int:
  """Length of the policy's observation: H + d (2 H + 1)."""
  return history + dimension * (2 * history + 1)


def relative_change(loss, previous_loss, has_previous):
  """`(loss - previous_loss) / previous_loss`, or 0 when there is no previous loss.

  Args:
    loss: f_i, scalar tensor.
    previous_loss: f_{i-1}, scalar tensor; its magnitude is floored at 1e-12.
    has_previous: boolean scalar, False at the first step.

  Returns:
    A scalar tensor of `loss`'s dtype.
  """
  floor = tf.constant(LOSS_FLOOR, loss.dtype)
  safe = tf.where(tf.abs(previous_loss) < floor,
                  tf.where(previous_loss < 0, -floor, floor), previous_loss)
  return tf.where(has_previous, (loss - previous_loss) / safe, tf.zeros_like(loss))


def push(history, value):
  """Drops the oldest (first) entry of `history [H, ...]` and appends `value` last."""
  return tf.concat([history[1:], value[None]], axis=0)


def policy_features(relative_changes, past_gradients, gradient, past_steps):
  """The observation o = [relative_changes; past_gradients; gradient; past_steps].

  Args:
    relative_changes: `[H]`, oldest first, ending with the change into the
      current iterate.
    past_gradients: `[H, d]`, oldest first (row H - 1 is the previous gradient).
    gradient: `[d]`, the current gradient.
    past_steps: `[H, d]`, oldest first (row H - 1 is the previous step).

  Returns:
    `[H + d (2 H + 1)]`, the blocks flattened row by row in that order.

  Example:

  >>> import tensorflow as tf
  >>> o = policy_features(tf.constant([0.0, -0.5]), tf.constant([[1.0, 2.0], [3.0, 4.0]]),
  ...                     tf.constant([5.0, 6.0]), tf.zeros([2, 2]))
  >>> o.numpy().tolist()
  [0.0, -0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0]
  """
  return tf.concat([relative_changes, tf.reshape(past_gradients, [-1]), gradient,
                    tf.reshape(past_steps, [-1])], axis=0)


class PolicyRule(base.Rule):
  """Li & Malik's P1 policy network; the rule is the policy's mean step.

  Args:
    dimension: d, the number of parameters (one flat variable of d entries).
    history: H, the length of the histories.
    hidden_units: widths of the hidden layers (each at least 2 d); `()` makes
      the mean linear in the observation.
    activation: `"relu"` (the authors' code) or `"softplus"` (the paper).
    init_step: gamma of the initial policy, mean = -gamma * current gradient.
    init_variance: initial policy variance exp(log_variance), per coordinate.

  Raises:
    ValueError: for a configuration outside the allowed ranges.

  Example:

  >>> import keras_l2o
  >>> rule = keras_l2o.rules.get("gps_policy", dimension=4, history=25)
  >>> rule.observation_size, rule.uses_loss
  (229, True)
  """

  name = "gps_policy"
  uses_loss = True

  def __init__(self, *, dimension: int = 4, history: int = 25, hidden_units=(50,),
               activation: str = "relu", init_step: float = 0.1, init_variance: float = 0.01):
    dimension = validation.check_int("dimension", dimension, low=1, high=validation.MAX_WIDTH)
    history = validation.check_int("history", history, low=1, high=validation.MAX_WIDTH)
    if (not isinstance(hidden_units, (tuple, list)) or len(hidden_units) > validation.MAX_LAYERS
        or any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or u < 2 * dimension
               for u in hidden_units)):
      raise ValueError("Argument `hidden_units` must be a (possibly empty) tuple of integers of "
                       f"at least 2 * dimension = {2 * dimension} (the initial policy passes "
                       f"+g and -g through). Received: hidden_units={hidden_units!r}")
    validation.check_choice("activation", activation, sorted(ACTIVATIONS))
    init_step = validation.check_non_negative("init_step", init_step)
    init_variance = validation.check_positive("init_variance", init_variance)
    hidden_units = tuple(int(u) for u in hidden_units)
    widths = (observation_size(dimension, history),) + hidden_units + (dimension,)
    validation.check_meta_param_count(self.name, sum(a * b for a, b in zip(widths, widths[1:])))
    self.dimension, self.history = dimension, history
    self.hidden_units, self.activation = hidden_units, activation
    self.init_step, self.init_variance = init_step, init_variance

  @property
  def state_type(self):
    """`PolicyState`: three histories of H along a trailing axis, and the previous loss."""
    h = self.history
    return base.declare_state("PolicyState", relative_changes=h, gradients=h, steps=h,
                              previous_loss=None)

  @property
  def observation_size(self) -> int:
    """H + d (2 H + 1)."""
    return observation_size(self.dimension, self.history)

  @property
  def gradient_slice(self) -> slice:
    """Where the current gradient sits in the observation."""
    start = self.history * (1 + self.dimension)
    return slice(start, start + self.dimension)

  # ------------------------------------------------------- meta-parameters --
  def meta_param_shapes(self) -> dict:
    d, size = self.dimension, self.observation_size
    shapes = {"normalizer": {"mean": (size,), "std": (size,)}, "log_variance": (d,)}
    fan_in = size
    for i, units in enumerate(self.hidden_units):
      shapes[f"hidden_{i}"] = {"kernel": (fan_in, units), "bias": (units,)}
      fan_in = units
    shapes["output"] = {"kernel": (fan_in, d), "bias": (d,)}
    return shapes

  def init_meta_params(self, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    d, size = self.dimension, self.observation_size
    gradient_rows = np.arange(self.gradient_slice.start, self.gradient_slice.stop)
    params = {"normalizer": {"mean": np.zeros(size), "std": np.ones(size)},
              "log_variance": np.full(d, math.log(self.init_variance))}
    fan_in = size
    for i, units in enumerate(self.hidden_units):
      kernel = rng.normal(0.0, 1.0 / math.sqrt(fan_in), size=(fan_in, units))
      plus = np.zeros((fan_in, d))  # the input combination that equals g
      if i == 0:
        plus[gradient_rows, np.arange(d)] = 1.0
      else:  # a(g) - a(-g) = g from the previous layer's pass-through units
        plus[np.arange(d), np.arange(d)] = 1.0
        plus[d + np.arange(d), np.arange(d)] = -1.0
      kernel[:, :d], kernel[:, d:2 * d] = plus, -plus
      params[f"hidden_{i}"] = {"kernel": kernel, "bias": np.zeros(units)}
      fan_in = units
    output = np.zeros((fan_in, d))
    if self.hidden_units:
      output[:d] = -self.init_step * np.eye(d)
      output[d:2 * d] = self.init_step * np.eye(d)
    else:
      output[gradient_rows, np.arange(d)] = -self.init_step
    params["output"] = {"kernel": output, "bias": np.zeros(d)}
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  def mean(self, meta_params, observations):
    """The policy mean mu(o) for a batch of observations `[N, H + d (2 H + 1)]` -> `[N, d]`."""
    mp = base.cast_meta_params(meta_params, observations.dtype)
    floor = tf.constant(STD_FLOOR, observations.dtype)
    hidden = (observations - mp["normalizer"]["mean"]) / tf.maximum(mp["normalizer"]["std"], floor)
    activation = ACTIVATIONS[self.activation]
    for i in range(len(self.hidden_units)):
      layer = mp[f"hidden_{i}"]
      hidden = activation(tf.matmul(hidden, layer["kernel"]) + layer["bias"])
    return tf.matmul(hidden, mp["output"]["kernel"]) + mp["output"]["bias"]

  def variance(self, meta_params):
    """The diagonal of the policy covariance Sigma_pi, `[d]`."""
    return tf.exp(meta_params["log_variance"])

  # ------------------------------------------------------------------ state --
  def init_state(self, var):
    return base.zeros_state(self, var)

  def _flat(self, tensor):
    size = tensor.shape.num_elements()
    if size is not None and size != self.dimension:
      raise ValueError(f"Rule 'gps_policy' with dimension={self.dimension} optimises one variable "
                       f"of {self.dimension} parameters (the policy sees all of them at once). "
                       f"Received a variable of shape {tuple(tensor.shape)} ({size} parameters).")
    return tf.reshape(tensor, [self.dimension])

  def _histories(self, grad, state, step, loss):
    """`(relative_changes [H] including the newest, gradients [H, d], steps [H, d])`."""
    d, h = self.dimension, self.history
    self._flat(grad)  # checks the size first
    loss = tf.cast(tf.reshape(loss, []), grad.dtype)
    previous = tf.reshape(state.previous_loss, [d])[0]
    has_previous = tf.cast(step, tf.int64) > 1
    changes = push(tf.reshape(state.relative_changes, [d, h])[0],
                   relative_change(loss, previous, has_previous))
    gradients = tf.transpose(tf.reshape(state.gradients, [d, h]))
    steps = tf.transpose(tf.reshape(state.steps, [d, h]))
    return changes, gradients, steps

  def observe(self, grad, state, step, loss):
    """The observation `[H + d (2 H + 1)]` at the current iterate.

    Args:
      grad: the current gradient (d entries, any shape).
      state: the rule's state (`PolicyState`).
      step: 1-based index of the coming update.
      loss: the objective at the current iterate (scalar).
    """
    changes, gradients, steps = self._histories(grad, state, step, loss)
    return policy_features(changes, gradients, self._flat(grad), steps)

  def next_state(self, grad, state, step, loss, action):
    """The state after taking `action` (d entries) at the current iterate."""
    changes, gradients, steps = self._histories(grad, state, step, loss)
    shape = tf.concat([tf.shape(grad), [self.history]], 0)
    gradients = push(gradients, self._flat(grad))
    steps = push(steps, tf.cast(self._flat(action), grad.dtype))
    return self.state_type(
        tf.reshape(tf.tile(changes[None], [self.dimension, 1]), shape),
        tf.reshape(tf.transpose(gradients), shape),
        tf.reshape(tf.transpose(steps), shape),
        tf.fill(tf.shape(grad), tf.cast(tf.reshape(loss, []), grad.dtype)))

  def apply(self, meta_params, grad, var, state, step, loss=None):
    del var
    if loss is None:
      raise ValueError("Rule 'gps_policy' needs the objective value: apply(..., loss=...). "
                       "Received: loss=None")
    observation = self.observe(grad, state, step, loss)
    action = self.mean(meta_params, observation[None])[0]
    return tf.reshape(action, tf.shape(grad)), self.next_state(grad, state, step, loss, action)
