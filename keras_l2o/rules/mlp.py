"""A cheap per-parameter MLP rule on momentum and second-moment features.

For every coordinate the rule keeps three accumulators (3 floats of state per
parameter): a fast momentum m (beta_1), a slow momentum s (beta_slow) and a
second moment v (beta_2), all bias-corrected. From them it forms three
RMS-normalised features

    r = 1 / (sqrt(v_hat) + epsilon)
    f = [g r, m_hat r, s_hat r]

and outputs

    update = step_scale * (w_skip . f + W_2 relu(W_1 f + b_1) + b_2).

At initialisation `w_skip = [0, -1, 0]` and `W_2 = 0, b_2 = 0`, so before any
meta-training the rule *is* Adam with learning rate `step_scale` (with epsilon
added after the bias correction): it trains models sensibly from the start, and
meta-training learns a correction on top of it.
"""

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import features

MLPState = base.declare_state("MLPState", momentum=None, slow_momentum=None, velocity=None)

NUM_FEATURES = 3


def normalised_features(grad, m, s, v, step, *, beta_1, beta_slow, beta_2, epsilon):
  """The network's input `[g, m_hat, s_hat] / (sqrt(v_hat) + epsilon)`, shape `[..., 3]`."""
  dtype = grad.dtype
  v_hat = v / features.bias_correction(beta_2, step, dtype)
  r = features.rsqrt_normaliser(v_hat, epsilon)
  m_hat = m / features.bias_correction(beta_1, step, dtype)
  s_hat = s / features.bias_correction(beta_slow, step, dtype)
  return tf.stack([grad * r, m_hat * r, s_hat * r], axis=-1)


def mlp_features(grad, state, step, *, beta_1, beta_slow, beta_2, epsilon):
  """Updates the accumulators and returns `(features [..., 3], new_state)`."""
  grad = features.bounded(grad)
  m = features.ema(state.momentum, grad, beta_1)
  s = features.ema(state.slow_momentum, grad, beta_slow)
  v = features.ema(state.velocity, features.safe_square(grad), beta_2)
  feats = normalised_features(grad, m, s, v, step, beta_1=beta_1, beta_slow=beta_slow,
                              beta_2=beta_2, epsilon=epsilon)
  return feats, MLPState(m, s, v)


class MLPRule(base.Rule):
  """Per-parameter MLP on gradient, momentum and second-moment features.

  Args:
    hidden_size: width of the hidden layer.
    beta_1: decay of the fast momentum.
    beta_slow: decay of the slow momentum.
    beta_2: decay of the second moment.
    epsilon: added to the RMS normaliser.
    step_scale: multiplies the network's output; the initial rule is Adam with
      this learning rate (times the optimizer's `learning_rate`).

  Example:

  >>> import keras_l2o
  >>> rule = keras_l2o.rules.get("mlp")
  >>> rule.state_floats_per_parameter()
  3
  """

  name = "mlp"
  state_type = MLPState
  # `LearnedOptimizer(jit_rule="auto")` applies `fast_apply` (docs/PERFORMANCE.md).
  auto_fast_path = True

  def __init__(self, *, hidden_size: int = 16, beta_1: float = 0.9, beta_slow: float = 0.99,
               beta_2: float = 0.999, epsilon: float = 1e-8, step_scale: float = 1e-3):
    hidden_size = validation.check_width("hidden_size", hidden_size)
    beta_1, beta_slow, beta_2 = (validation.check_decay(arg, value) for arg, value in (
        ("beta_1", beta_1), ("beta_slow", beta_slow), ("beta_2", beta_2)))
    epsilon = validation.check_positive("epsilon", epsilon)
    step_scale = validation.check_positive("step_scale", step_scale)
    self.hidden_size = hidden_size
    self.beta_1, self.beta_slow, self.beta_2 = beta_1, beta_slow, beta_2
    self.epsilon, self.step_scale = epsilon, step_scale

  @property
  def betas(self) -> dict:
    """The accumulators' decays and epsilon, as keyword arguments of `mlp_features`."""
    return dict(beta_1=self.beta_1, beta_slow=self.beta_slow, beta_2=self.beta_2,
                epsilon=self.epsilon)

  def meta_param_shapes(self) -> dict:
    hidden = self.hidden_size
    return {"skip": (NUM_FEATURES, 1),
            "hidden": {"kernel": (NUM_FEATURES, hidden), "bias": (hidden,)},
            "output": {"kernel": (hidden, 1), "bias": (1,)}}

  def init_meta_params(self, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    params = {
        "skip": np.array([[0.0], [-1.0], [0.0]]),
        "hidden": {"kernel": rng.normal(0.0, 1.0 / np.sqrt(NUM_FEATURES),
                                        size=(NUM_FEATURES, self.hidden_size)),
                   "bias": np.zeros(self.hidden_size)},
        "output": {"kernel": np.zeros((self.hidden_size, 1)), "bias": np.zeros(1)},
    }
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  def init_state(self, var):
    return base.zeros_state(self, var)

  def features(self, grad, state, step):
    """The accumulator update and the network's input: `(features [..., 3], new_state)`."""
    return mlp_features(grad, state, step, **self.betas)

  def apply(self, meta_params, grad, var, state, step):
    del var
    dtype = grad.dtype
    mp = base.cast_meta_params(meta_params, dtype)
    feats, new_state = self.features(grad, state, step)
    flat = tf.reshape(feats, [-1, NUM_FEATURES])
    hidden = tf.nn.relu(tf.matmul(flat, mp["hidden"]["kernel"]) + mp["hidden"]["bias"])
    out = tf.matmul(flat, mp["skip"]) + tf.matmul(hidden, mp["output"]["kernel"]) + mp[
        "output"]["bias"]
    update = tf.reshape(out[:, 0] * tf.constant(self.step_scale, dtype), tf.shape(grad))
    return update, new_state

  def fast_apply(self, meta_params, grad, var, state, step):
    """`apply` with the network written as fused elementwise terms (for XLA).

    The same function: every hidden unit j is
    `relu(f_0 W_1[0, j] + f_1 W_1[1, j] + f_2 W_1[2, j] + b_1[j])`, summed with
    weights `W_2[j]`, instead of two skinny matmuls, so that XLA compiles the
    whole rule into one pass over the coordinates (`keras_l2o.step_paths`).
    Differs from `apply` by rounding only; `apply` remains the definition.
    """
    del var
    dtype = grad.dtype
    mp = base.cast_meta_params(meta_params, dtype)
    feats, new_state = self.features(grad, state, step)
    f = tf.unstack(feats, axis=-1)
    w_1, b_1 = mp["hidden"]["kernel"], mp["hidden"]["bias"]
    w_2, skip = mp["output"]["kernel"][:, 0], mp["skip"][:, 0]
    hidden_sum = None
    for j in range(self.hidden_size):
      term = tf.nn.relu(f[0] * w_1[0, j] + f[1] * w_1[1, j] + f[2] * w_1[2, j] + b_1[j]) * w_2[j]
      hidden_sum = term if hidden_sum is None else hidden_sum + term
    out = f[0] * skip[0] + f[1] * skip[1] + f[2] * skip[2] + hidden_sum + mp["output"]["bias"][0]
    return out * tf.constant(self.step_scale, dtype), new_state
