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

With `weight_scale` set, the network also sees the parameter itself,
`f_3 = weight_scale * w` (no extra state). Its weights start at zero, so the
initial rule is unchanged; meta-training on a held-out loss can then learn a
decay of the parameters that depends on the other features (a learned,
state-dependent weight decay; VeLO and Celo also feed the parameter in).
`MLPRule.meta_params_from` pads a rule without it with those zeros, so a
trained `mlp` rule can be fine-tuned with the extra input.

With `collapse_decades` set, the network also sees how far each tensor's
gradient has fallen: per variable (not per coordinate) the rule keeps an EMA
(`COLLAPSE_DECAY`) of the gradient's mean square `a` and its running peak `p`
(2 floats per tensor), and every coordinate of the tensor gets the input

    f_c = min(log10(p / a_hat) / collapse_decades, COLLAPSE_CAP)

(`a_hat` bias-corrected; 0 while the gradient grows, 1 once it has fallen
`collapse_decades` decades from its peak). The ratio does not change when the
loss or the parameters are rescaled. It tells the rule which tensors have been
fitted, so that a learned decay (`weight_scale`) can act only there; its
weights start at zero, and `meta_params_from` pads a rule without it.

With both and `gated_weight=True`, a last input is their product
`f_c * weight_scale * w`: its skip weight alone is a decay gated by the
collapse, which a ReLU network would otherwise have to build from sums.
"""

import math
from typing import Optional

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import features

MLPState = base.declare_state("MLPState", momentum=None, slow_momentum=None, velocity=None)
# With `collapse_decades`: `gradient_scale` is [1, 2] per variable, (EMA of mean g^2, its peak).
MLPCollapseState = base.declare_state("MLPCollapseState", momentum=None, slow_momentum=None,
                                      velocity=None, gradient_scale=2)

NUM_FEATURES = 3  # without the optional weight and collapse inputs
COLLAPSE_DECAY = 0.9  # the EMA of a tensor's mean square gradient
COLLAPSE_CAP = 2.0  # the collapse input's largest value (a gradient that reached exactly 0)
_TINY = 1e-30


def collapse_input(grad, gradient_scale, step, *, collapse_decades):
  """A tensor's gradient collapse and its new `[1, 2]` statistics (see the module docstring).

  Args:
    grad: the variable's gradient, any shape.
    gradient_scale: `[1, 2]`: the EMA of the mean square gradient and the
      peak of its bias-corrected value, before this step.
    step: the 1-based step.
    collapse_decades: the fall (in decades of the mean square) read as 1.

  Returns:
    `(f_c, new_gradient_scale)`: a scalar in `[0, COLLAPSE_CAP]` and `[1, 2]`.
  """
  dtype = grad.dtype
  mean_square = features.mean_below_max(features.safe_square(grad), axis=None)
  average = features.ema(gradient_scale[0, 0], mean_square, COLLAPSE_DECAY)
  current = average / features.bias_correction(COLLAPSE_DECAY, step, dtype)
  peak = tf.maximum(gradient_scale[0, 1], current)
  tiny = tf.constant(_TINY, dtype)
  decades = (tf.math.log(peak + tiny) - tf.math.log(current + tiny)) / tf.constant(
      math.log(10.0) * collapse_decades, dtype)
  f_c = tf.clip_by_value(decades, 0.0, COLLAPSE_CAP)
  return f_c, tf.stack([average, peak])[None]


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
    weight_scale: None (the default: the three features above), or a positive
      float: the network also gets the input `weight_scale * w`, with zero
      initial weights.
    collapse_decades: None (the default), or a positive float: the network
      also gets each tensor's gradient collapse (module docstring), with zero
      initial weights; 2 more floats of state per variable.
    gated_weight: None (the default) or True, which needs `weight_scale` and
      `collapse_decades`: the network also gets the product of their inputs.

  Example:

  >>> import keras_l2o
  >>> rule = keras_l2o.rules.get("mlp")
  >>> rule.state_floats_per_parameter()
  3
  >>> keras_l2o.rules.get("mlp", weight_scale=10.0).num_features
  4
  """

  name = "mlp"
  # `LearnedOptimizer(jit_rule="auto")` applies `fast_apply` (docs/PERFORMANCE.md).
  auto_fast_path = True
  # The optional inputs, in the order they are appended to the three features. They were
  # added after the shipped `mlp` optimizers were saved, so they are left out of the config
  # while None.
  optional_inputs = ("weight_scale", "collapse_decades", "gated_weight")
  omitted_when_none = optional_inputs

  def __init__(self, *, hidden_size: int = 16, beta_1: float = 0.9, beta_slow: float = 0.99,
               beta_2: float = 0.999, epsilon: float = 1e-8, step_scale: float = 1e-3,
               weight_scale: Optional[float] = None, collapse_decades: Optional[float] = None,
               gated_weight: Optional[bool] = None):
    hidden_size = validation.check_width("hidden_size", hidden_size)
    beta_1, beta_slow, beta_2 = (validation.check_decay(arg, value) for arg, value in (
        ("beta_1", beta_1), ("beta_slow", beta_slow), ("beta_2", beta_2)))
    epsilon = validation.check_positive("epsilon", epsilon)
    step_scale = validation.check_positive("step_scale", step_scale)
    if weight_scale is not None:
      weight_scale = validation.check_positive("weight_scale", weight_scale)
    if collapse_decades is not None:
      collapse_decades = validation.check_positive("collapse_decades", collapse_decades)
    if gated_weight not in (None, True):
      raise ValueError(f"Argument `gated_weight` must be None or True. Received: gated_weight="
                       f"{gated_weight!r}")
    if gated_weight and (weight_scale is None or collapse_decades is None):
      raise ValueError("Argument `gated_weight=True` needs `weight_scale` and `collapse_decades`."
                       f" Received: weight_scale={weight_scale!r}, collapse_decades="
                       f"{collapse_decades!r}")
    self.weight_scale = weight_scale
    self.collapse_decades = collapse_decades
    self.gated_weight = gated_weight
    self.hidden_size = hidden_size
    self.beta_1, self.beta_slow, self.beta_2 = beta_1, beta_slow, beta_2
    self.epsilon, self.step_scale = epsilon, step_scale

  @property
  def betas(self) -> dict:
    """The accumulators' decays and epsilon, as keyword arguments of `mlp_features`."""
    return dict(beta_1=self.beta_1, beta_slow=self.beta_slow, beta_2=self.beta_2,
                epsilon=self.epsilon)

  @property
  def num_features(self) -> int:
    """The network's inputs per coordinate: 3, plus 1 for each optional input that is set."""
    return NUM_FEATURES + sum(getattr(self, name) is not None for name in self.optional_inputs)

  @property
  def state_type(self):
    """`MLPState`, or `MLPCollapseState` with `collapse_decades`."""
    return MLPState if self.collapse_decades is None else MLPCollapseState

  def state_floats_per_parameter(self) -> int:
    """3 (two momenta, one second moment); the collapse statistics are per variable."""
    return len(MLPState._fields)

  def layout_free(self, shape) -> bool:
    """False with `collapse_decades` (a per-tensor statistic), True otherwise."""
    del shape
    return self.collapse_decades is None

  def meta_param_shapes(self) -> dict:
    hidden, n = self.hidden_size, self.num_features
    return {"skip": (n, 1),
            "hidden": {"kernel": (n, hidden), "bias": (hidden,)},
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
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32),
                                 _with_zero_input_rows(params, self.num_features))

  def meta_params_from(self, rule, meta_params) -> dict:
    """`rule`'s trained meta-parameters as this rule's: equal, or padded with zero input weights.

    Args:
      rule: the rule `meta_params` belong to.
      meta_params: its meta-parameters (nested dict of arrays or tensors).

    Returns:
      `meta_params` unchanged when `rule == self`; when `rule` is this rule
      without its last optional inputs (`optional_inputs`: e.g. without the
      collapse input, or without it and the weight input), the same with zero
      weights for the inputs it lacks (the same update as `rule`'s, for every
      input).

    Raises:
      ValueError: any other pair of configurations (both are named).
    """
    config = self.get_config()
    set_inputs = [name for name in self.optional_inputs if config.get(name) is not None]
    smaller = [dict(config, **dict.fromkeys(set_inputs[k:])) for k in range(len(set_inputs))]
    if rule == self or any(rule == type(self)(**c) for c in smaller):
      return _with_zero_input_rows(meta_params, self.num_features)
    return super().meta_params_from(rule, meta_params)

  def init_state(self, var):
    if self.collapse_decades is None:
      return base.zeros_state(self, var)
    dtype = self.state_dtype(var.dtype)
    zeros = tf.zeros(tf.shape(var), dtype)
    return MLPCollapseState(zeros, zeros, zeros, tf.zeros([1, 2], dtype))

  def features(self, grad, state, step):
    """The accumulator update and the network's input: `(features [..., 3], new_state)`."""
    return mlp_features(grad, state, step, **self.betas)

  def network_input(self, grad, var, state, step):
    """`self.features`, then the weight input and the collapse input where they are set."""
    feats, new_state = self.features(grad, state, step)
    if self.weight_scale is not None:
      weight = tf.cast(var, grad.dtype) * tf.constant(self.weight_scale, grad.dtype)
      weight = features.bounded(weight)[..., None]
      feats = tf.concat([feats, weight], axis=-1)
    if self.collapse_decades is not None:
      f_c, gradient_scale = collapse_input(grad, state.gradient_scale, step,
                                           collapse_decades=self.collapse_decades)
      feats = tf.concat([feats, tf.broadcast_to(f_c, tf.shape(grad))[..., None]], axis=-1)
      if self.gated_weight:
        feats = tf.concat([feats, weight * f_c], axis=-1)
      new_state = MLPCollapseState(*new_state, gradient_scale)
    return feats, new_state

  def apply(self, meta_params, grad, var, state, step):
    dtype = grad.dtype
    mp = base.cast_meta_params(meta_params, dtype)
    feats, new_state = self.network_input(grad, var, state, step)
    flat = tf.reshape(feats, [-1, self.num_features])
    hidden = tf.nn.relu(tf.matmul(flat, mp["hidden"]["kernel"]) + mp["hidden"]["bias"])
    out = tf.matmul(flat, mp["skip"]) + tf.matmul(hidden, mp["output"]["kernel"]) + mp[
        "output"]["bias"]
    update = tf.reshape(out[:, 0] * tf.constant(self.step_scale, dtype), tf.shape(grad))
    return update, new_state

  def fast_apply(self, meta_params, grad, var, state, step):
    """`apply` with the network written as fused elementwise terms (for XLA).

    The same function: every hidden unit j is
    `relu(f_0 W_1[0, j] + f_1 W_1[1, j] + ... + b_1[j])`, summed with
    weights `W_2[j]`, instead of two skinny matmuls, so that XLA compiles the
    whole rule into one pass over the coordinates (`keras_l2o.step_paths`).
    Differs from `apply` by rounding only; `apply` remains the definition.
    """
    dtype = grad.dtype
    mp = base.cast_meta_params(meta_params, dtype)
    feats, new_state = self.network_input(grad, var, state, step)
    f = tf.unstack(feats, axis=-1)
    w_1, b_1 = mp["hidden"]["kernel"], mp["hidden"]["bias"]
    w_2, skip = mp["output"]["kernel"][:, 0], mp["skip"][:, 0]

    def weighted_sum(weights):  # f_0 w_0 + f_1 w_1 + ..., summed in this order
      total = f[0] * weights[0]
      for i in range(1, len(f)):
        total += f[i] * weights[i]
      return total

    hidden_sum = None
    for j in range(self.hidden_size):
      term = tf.nn.relu(weighted_sum(w_1[:, j]) + b_1[j]) * w_2[j]
      hidden_sum = term if hidden_sum is None else hidden_sum + term
    out = weighted_sum(skip) + hidden_sum + mp["output"]["bias"][0]
    return out * tf.constant(self.step_scale, dtype), new_state


def _with_zero_input_rows(meta_params, num_features: int):
  """`meta_params` with zero rows appended to the input weights up to `num_features` inputs."""
  def pad(weights):
    weights = np.asarray(weights)
    return np.concatenate([weights, np.zeros((num_features - weights.shape[0],) +
                                             weights.shape[1:], weights.dtype)])
  params = dict(meta_params)
  params["skip"] = pad(params["skip"])
  params["hidden"] = dict(params["hidden"], kernel=pad(params["hidden"]["kernel"]))
  return params
