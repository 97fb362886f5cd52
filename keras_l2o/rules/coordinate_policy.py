"""Li & Malik's coordinatewise policy for neural nets (P2) as a rule: an LSTM per coordinate.

One small LSTM with shared weights runs on every coordinate of every variable,
so the same policy serves any layer shape. Its input at step t is the P2
observation of the coordinate (three numbers):

    r_t = (f_t - f_{t-1}) / |f_{t-1}|          relative objective change (0 at the first step)
    n_t = g_t / (|g_{t-1}| + 1)                 gradient, normalised by the previous one
    q_t = |dx_{t-1}| / (|dx_{t-2}| + 0.1)       ratio of the last two step sizes

standardised as z = (o - normalizer/mean) / max(normalizer/std, 1e-3) (identity
until guided policy search freezes the statistics of its first samples). The
step is

    (h, c) <- LSTM(z, h, c)
    dx_t = output_scale * (W_out h + W_skip z + b_out),

a Gaussian policy N(dx_t, Sigma_pi) whose mean the rule applies (use
learning_rate 1). The LSTM memory (h, c) is the policy's per-coordinate state,
so the policy is a POMDP policy as in P2. At initialisation W_out = 0 and the
skip weights read -init_step from n_t, so the rule starts as gradient descent
on the normalised gradient.

The rule reads the objective value (`uses_loss`): a custom training loop calls
`LearnedOptimizer.set_loss`, and `model.fit` supplies it automatically (the
optimizer records the loss Keras hands to `scale_loss`). Only relative changes
of the loss enter, so the scale of the loss does not matter.

State per parameter: the previous loss, gradient, step and the step before
it, and the LSTM's h and c: 4 + 2 hidden_size floats.

Example:

>>> import numpy as np, tensorflow as tf, keras_l2o
>>> rule = keras_l2o.rules.get("gps_lstm", hidden_size=4)
>>> params = rule.init_meta_params(0)
>>> var = tf.zeros([3])
>>> update, state = rule.apply(params, tf.constant([1.0, -2.0, 0.5]), var, rule.init_state(var),
...                            1, loss=tf.constant(2.0))
>>> [round(float(u), 5) for u in update.numpy()]   # -output_scale * init_step * g / (0 + 1)
[-0.001, 0.002, -0.0005]

References:
  Li, K. & Malik, J. Learning to Optimize Neural Nets. arXiv:1703.00441, 2017.
"""

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import lstm as lstm_lib
from keras_l2o.rules import policy as policy_lib

NUM_FEATURES = 3
STEP_RATIO_OFFSET = 0.1


def observe(loss, previous_loss, has_previous, grad, previous_gradient, previous_step,
            step_before):
  """The P2 observation `[..., 3]` of every coordinate (module docstring).

  Args:
    loss: f_t, scalar.
    previous_loss: f_{t-1}, scalar (ignored when `has_previous` is False).
    has_previous: boolean scalar, False at the first step.
    grad, previous_gradient, previous_step, step_before: g_t, g_{t-1},
      dx_{t-1}, dx_{t-2}, all the same shape (zeros before the first step).

  Returns:
    `grad.shape + [3]`: (r_t, n_t, q_t).

  Example:

  >>> import tensorflow as tf
  >>> o = observe(tf.constant(1.5), tf.constant(2.0), tf.constant(True), tf.constant([3.0]),
  ...             tf.constant([-1.0]), tf.constant([0.2]), tf.constant([0.3]))
  >>> [round(v, 4) for v in o.numpy()[0].tolist()]
  [-0.25, 1.5, 0.5]
  """
  dtype = grad.dtype
  change = policy_lib.relative_change(tf.cast(loss, dtype), tf.cast(previous_loss, dtype),
                                      has_previous)
  normalised = grad / (tf.abs(previous_gradient) + 1.0)
  ratio = tf.abs(previous_step) / (tf.abs(step_before) + STEP_RATIO_OFFSET)
  return tf.stack([tf.broadcast_to(change, tf.shape(grad)), normalised, ratio], axis=-1)


class CoordinatePolicyRule(base.Rule):
  """The P2 coordinatewise LSTM policy; the rule is its mean step.

  Args:
    hidden_size: LSTM cells (the paper uses 128; 16 keeps guided policy search
      on 2 CPU cores affordable).
    output_scale: multiplies the network's output. It sets how far the
      supervised fit of guided policy search can move the step: Adam moves
      each weight by about its learning rate per step, and the weight decay
      grows with the square of the weights a given step needs. At 0.01 (the
      default until issue 22) the default GPS run's policy on logistic
      regression reached only 0.8 times the gradient as its first step, where
      its teachers take 2.5 times it, and lost the sum of losses to tuned
      gradient descent (docs/results/gps_logreg22).
    init_step: the initial policy is -output_scale * init_step * n_t (the
      defaults give -0.001 n_t, the initial policy of the earlier defaults).
    init_scale: standard deviation of the initial LSTM weights.

  Raises:
    ValueError: for a configuration outside the allowed ranges.
  """

  name = "gps_lstm"
  uses_loss = True

  def __init__(self, *, hidden_size: int = 16, output_scale: float = 0.1,
               init_step: float = 0.01, init_scale: float = 0.1):
    hidden_size = validation.check_width("hidden_size", hidden_size)
    output_scale = validation.check_positive("output_scale", output_scale)
    init_step = validation.check_non_negative("init_step", init_step)
    init_scale = validation.check_non_negative("init_scale", init_scale)
    self.hidden_size, self.output_scale = hidden_size, output_scale
    self.init_step, self.init_scale = init_step, init_scale

  @property
  def state_type(self):
    """The previous loss, gradient and two steps (like the variable), and the LSTM's h and c."""
    return base.declare_state("CoordinatePolicyState", previous_loss=None, previous_gradient=None,
                              previous_step=None, step_before=None, h=self.hidden_size,
                              c=self.hidden_size)

  # ------------------------------------------------------- meta-parameters --
  def meta_param_shapes(self) -> dict:
    hidden = self.hidden_size
    return {"normalizer": {"mean": (NUM_FEATURES,), "std": (NUM_FEATURES,)},
            "lstm": {"kernel": (NUM_FEATURES + hidden, 4 * hidden), "bias": (4 * hidden,)},
            "output": {"kernel": (hidden, 1), "skip": (NUM_FEATURES, 1), "bias": (1,)}}

  def init_meta_params(self, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    hidden = self.hidden_size
    skip = np.zeros((NUM_FEATURES, 1))
    skip[1, 0] = -self.init_step
    bias = np.zeros(4 * hidden)
    bias[hidden:2 * hidden] = 1.0  # forget gates start open
    params = {
        "normalizer": {"mean": np.zeros(NUM_FEATURES), "std": np.ones(NUM_FEATURES)},
        "lstm": {"kernel": rng.normal(0.0, self.init_scale, (NUM_FEATURES + hidden, 4 * hidden)),
                 "bias": bias},
        "output": {"kernel": np.zeros((hidden, 1)), "skip": skip, "bias": np.zeros(1)},
    }
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  def standardize(self, meta_params, observations):
    """z = (o - mean) / max(std, 1e-3) for observations `[..., 3]`."""
    norm = base.cast_meta_params(meta_params["normalizer"], observations.dtype)
    floor = tf.constant(policy_lib.STD_FLOOR, observations.dtype)
    return (observations - norm["mean"]) / tf.maximum(norm["std"], floor)

  def cell(self, meta_params, observations, h, c):
    """One policy step for a batch of coordinates: `([n, 3], [n, H], [n, H]) -> (mean [n], h, c)`.

    The single formula behind `apply` and `sequence_mean` (guided policy
    search's supervised fit).
    """
    mp = base.cast_meta_params(meta_params, observations.dtype)
    z = self.standardize(meta_params, observations)
    h, c = lstm_lib.lstm_cell(mp["lstm"]["kernel"], mp["lstm"]["bias"], z, h, c)
    out = mp["output"]
    mean = tf.matmul(h, out["kernel"]) + tf.matmul(z, out["skip"]) + out["bias"]
    return self.output_scale * mean[..., 0], h, c

  def sequence_mean(self, meta_params, observations):
    """The policy's means along whole trajectories: `[B, T, 3] -> [B, T]`, from zero memory."""
    observations = tf.convert_to_tensor(observations)
    batch = tf.shape(observations)[0]
    zeros = tf.zeros([batch, self.hidden_size], observations.dtype)
    steps = tf.transpose(observations, [1, 0, 2])

    def body(carry, o):
      _, h, c = carry
      return self.cell(meta_params, o, h, c)

    means, _, _ = tf.scan(body, steps, initializer=(tf.zeros([batch], observations.dtype),
                                                    zeros, zeros))
    return tf.transpose(means)

  # ------------------------------------------------------------------ state --
  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step, loss=None):
    del var
    if loss is None:
      raise ValueError("Rule 'gps_lstm' needs the objective value: apply(..., loss=...). "
                       "Received: loss=None")
    dtype = grad.dtype
    loss = tf.cast(tf.reshape(loss, []), dtype)
    previous_loss = tf.reshape(state.previous_loss, [-1])[:1]
    previous_loss = tf.reduce_sum(previous_loss)  # 0 for an empty variable
    has_previous = tf.cast(step, tf.int64) > 1
    obs = observe(loss, previous_loss, has_previous, grad, state.previous_gradient,
                  state.previous_step, state.step_before)
    hidden = self.hidden_size
    mean, h, c = self.cell(meta_params, tf.reshape(obs, [-1, NUM_FEATURES]),
                           tf.reshape(state.h, [-1, hidden]), tf.reshape(state.c, [-1, hidden]))
    update = tf.reshape(mean, tf.shape(grad))
    memory_shape = tf.concat([tf.shape(grad), [hidden]], 0)
    return update, self.state_type(
        tf.fill(tf.shape(grad), loss), grad, update, state.previous_step,
        tf.reshape(h, memory_shape), tf.reshape(c, memory_shape))

