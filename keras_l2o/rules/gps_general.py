"""`gps_general`: a coordinatewise policy for guided policy search with scale-free inputs and steps.

Issue 22's diagnosis (docs/RESULTS.md, "Why gps-mnist fails off its training
net") found the GPS-trained `gps_lstm` policy to be, in effect, plain gradient
descent at a fixed rate (0.83 on g / (|g_prev| + 1)) plus a gradient-
independent drift: its inputs carry the gradient's raw scale and nothing bounds
its step, so on a net whose gradients differ from the training net's the step
is far too large (all ReLU channels of a conv layer die within 10 steps) or
diverges. This policy keeps Li & Malik's coordinatewise structure (one small
network shared by every coordinate, so the coordinate-group GPS of GPS.md
section 2 applies) and takes the two inductive biases of the `general` rule
(GENERAL.md), reusing its functions (`general_features`):

* **Scale-free inputs.** Per coordinate, 8 channels: the
  gradient g, its momenta m_b at b = 0.9 / 0.99 / 0.999, and g and the momenta
  times rho = rsqrt(v + floor) with v the 0.95 EMA of g^2 (Adam's normaliser,
  `general_features.floored_rsqrt`). Each channel is divided by its RMS over
  the whole tensor (`general_features.rms_normalise`), so multiplying the loss
  or the gradients by any constant leaves every input unchanged.
* **A controlled step.** The network's output is a direction
  d = w_skip . f + MLP(f), and the step is `step_scale * s * d / rms(d)` with
  the RMS over the tensor: every tensor moves by `step_scale * s` in RMS at
  every step (times the optimizer's `learning_rate`), whatever the network
  outputs. The magnitude s = exp(3 tanh(a / 3)) lies in [0.05, 20], with
  a = w_mag rho_m + b_mag learned from one scale-free number per tensor,
  rho_m = log(rms(m_0.9) / rms(m_0.999)): how the recent gradients compare
  with the long average (large at the start, below 0 once they shrink), which
  lets the policy shorten its steps as a run converges. At initialisation
  w_mag = b_mag = 0, so s = 1.
* **Annealing (option `anneal`, issue 22's follow-up).** rho_m cannot make
  the step shrink for good: once the gradients are dominated by minibatch
  noise, rms(m_0.9) / rms(m_0.999) settles near sqrt(0.1/1.9) /
  sqrt(0.001/1.999) ~ 10 (rho_m ~ 2.3) however far training has gone, so s
  and with it the update RMS stay constant and, at 10x the training horizon,
  the weights keep growing and the loss rises again
  (docs/results/gps_floor22). With `anneal=kappa` the magnitude gets a second
  per-tensor input, psi = log(rms(g) / peak rms(g)) <= 0: the RMS of the
  gradient (sqrt of the mean over the tensor of v) over the largest it has
  been in this run (one more float of state per parameter, `peak`, holding
  the tensor's peak mean v at every coordinate). Then
  a = w_mag . (rho_m, psi) + b_mag with w_mag initialised to (0, kappa), so
  the initial policy moves each tensor by step_scale while its gradient is
  at its peak and by step_scale * (rms(g) / peak)^kappa afterwards: the step
  shrinks as the gradients do, like gradient descent's, and stays
  scale-free. The bound is asymmetric: log s = 3 tanh(a / 3) for a >= 0 and
  10 tanh(a / 10) for a < 0, so s lies in [e^-10, e^3] (`ANNEAL_LOWER_BOUND`;
  equal to the old formula for a >= 0 and continuous with slope 1 at 0).
  `anneal=None` (the default) is the policy above, unchanged: configurations
  saved without the option load as they were.

* **Width (option `fan_in_reference`, μP-style).** The step above moves every
  tensor by the same RMS whatever its width, so a kernel with fan-in n
  changes its layer's pre-activations about n times as much per step as the
  same step on a fan-in-1 kernel: on a net 4x wider than the training net the
  hidden kernels move far more than tuned Adam's, the gradients never fall
  from their peak (so `anneal` never shrinks the step) and the weights grow
  (docs/results/six22). With `fan_in_reference=n0` every kernel (rank >= 2,
  fan-in n = the product of all dimensions but the last, Keras's convention
  for Dense and conv kernels) moves by `step_scale * s * n0 / n` instead, as
  μP scales Adam's hidden-layer rate by 1 / fan-in (Yang & Hu 2021; μLO,
  Thérien et al. 2024, for learned optimizers); tensors of rank < 2 (biases,
  scales) are not rescaled. With n0 the training net's fan-in the option is
  the identity there. It depends only on the shape, so it is a factor of
  `apply`'s update, not a learned input; None (the default) leaves it out.

No bias correction is needed: it multiplies a whole channel by one number,
which the per-tensor normalisation removes. There is no Newton–Schulz step
(the step of one coordinate depends on the others only through the tensor's
RMS, which GPS's per-coordinate LQG treats as a per-group scale).

One formula for every path: `step(meta_params, features, axis)` is the step
of coordinates whose features are `features [..., F]`, normalised over `axis`.
`apply` calls it with every axis of the variable; coordinate-group GPS calls it
on the recorded coordinates of a group (`trainers/gps/policy_class.py`), whose
RMS then estimates the tensor's.

Initialisation: the MLP's output layer is zero and `w_skip` is -1 on
m_0.9 * rho: the rule starts as RMS-normalised Adam (without bias correction)
at step `step_scale`.

State per parameter: 3 momenta and 1 second moment (4 floats); with
`anneal`, also the peak (5 floats).

Example:

>>> import tensorflow as tf, keras_l2o
>>> rule = keras_l2o.rules.get("gps_general", step_scale=0.01)
>>> var = tf.zeros([4, 3])
>>> grad = tf.reshape(tf.range(12, dtype=tf.float32) - 5.5, [4, 3])
>>> update, _ = rule.apply(rule.init_meta_params(0), grad, var, rule.init_state(var), 1)
>>> round(float(tf.sqrt(tf.reduce_mean(update ** 2))), 6)   # the RMS of every step
0.01
"""

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import general_features as gf

GPSGeneralState = base.declare_state("GPSGeneralState", momentum=len(gf.MOMENTUM_DECAYS),
                                     velocity=None)
GPSGeneralAnnealState = base.declare_state("GPSGeneralAnnealState",
                                           momentum=len(gf.MOMENTUM_DECAYS), velocity=None,
                                           peak=None)

_D = ("0.9", "0.99", "0.999")
FEATURES = (("grad",) + tuple(f"momentum_{d}" for d in _D) + ("grad_rsqrt_v",)
            + tuple(f"momentum_{d}_rsqrt_v" for d in _D) + ("log_momentum_ratio",))
NUM_FEATURES = len(FEATURES)  # 9: 8 per coordinate, then 1 per tensor (broadcast)
NUM_DIRECTION_FEATURES = NUM_FEATURES - 1
SKIP_FEATURE = FEATURES.index("momentum_0.9_rsqrt_v")
MAGNITUDE_BOUND = 3.0  # s = exp(3 tanh(a / 3)) in [e^-3, e^3]
ANNEAL_FEATURE = "log_grad_over_peak"  # psi, the 10th feature with `anneal`
ANNEAL_LOWER_BOUND = 10.0  # with `anneal`, log s = 10 tanh(a / 10) for a < 0: s >= e^-10


def observe(grad, state, axis):
  """The normalised features of every coordinate and the new state.

  Args:
    grad: the gradient, any shape.
    state: `GPSGeneralState` (momentum `grad.shape + [3]`, velocity like grad)
      or `GPSGeneralAnnealState` (also peak, like grad).
    axis: the axes of `grad` over which a channel is RMS-normalised (all axes
      of a variable; the coordinate axis of a flat group).

  Returns:
    `(features grad.shape + [9 or 10], new_state)`: 8 channels RMS-normalised
    over `axis`, then rho_m and, for a `GPSGeneralAnnealState`, psi (each the
    same for every coordinate normalised together).
  """
  momentum = gf.ema(state.momentum, grad[..., None], gf.MOMENTUM_DECAYS)
  velocity = gf.ema(state.velocity[..., None], tf.square(grad)[..., None],
                    (gf.VELOCITY_DECAY,))[..., 0]
  rho = gf.floored_rsqrt(velocity, axis)[..., None]
  channels = tf.concat([grad[..., None], momentum, grad[..., None] * rho, momentum * rho], -1)
  axis = [a % grad.shape.rank for a in axis] if grad.shape.rank else []
  rms = tf.sqrt(tf.reduce_mean(tf.square(momentum), axis=axis, keepdims=True))
  ratio = tf.math.log((rms[..., :1] + gf.TINY) / (rms[..., 2:] + gf.TINY))
  ratio = tf.broadcast_to(ratio, tf.shape(grad[..., None]))
  if not isinstance(state, GPSGeneralAnnealState):
    return (tf.concat([gf.rms_normalise(channels, axis), ratio], -1),
            GPSGeneralState(momentum, velocity))
  mean_v = tf.reduce_mean(velocity, axis=axis, keepdims=True)
  peak = tf.maximum(state.peak, mean_v)  # the same at every coordinate normalised together
  psi = 0.5 * tf.math.log((mean_v + gf.TINY) / (peak + gf.TINY))
  psi = tf.broadcast_to(psi[..., None], tf.shape(grad[..., None]))
  return (tf.concat([gf.rms_normalise(channels, axis), ratio, psi], -1),
          GPSGeneralAnnealState(momentum, velocity, peak))


class GPSGeneralRule(base.Rule):
  """Scale-free coordinatewise policy with RMS-normalised steps (module docstring).

  Args:
    hidden_sizes: widths of the MLP's hidden layers (ReLU); `()` for a
      linear direction.
    step_scale: the RMS of every variable's update, before the optimizer's
      `learning_rate`.
    anneal: None (the issue-22 policy), or kappa >= 0: add the magnitude
      input psi = log(rms(g) / peak rms(g)) with initial weight kappa and
      widen s's lower bound to e^-10 (module docstring).
    fan_in_reference: None, or n0 > 0: multiply the step of every kernel
      (rank >= 2) with fan-in n by n0 / n (module docstring, "Width").

  Raises:
    ValueError: for a bad argument (the message names it and what it got).
  """

  name = "gps_general"
  state_type = GPSGeneralState

  # added after gps-mnist (issue 22) was saved without them
  omitted_when_none = ("anneal", "fan_in_reference")

  def __init__(self, *, hidden_sizes=(8,), step_scale: float = 1e-3, anneal=None,
               fan_in_reference=None):
    if not isinstance(hidden_sizes, (list, tuple)) or len(hidden_sizes) > validation.MAX_LAYERS \
        or not all(isinstance(h, (int, np.integer)) and not isinstance(h, bool) and h > 0
                   for h in hidden_sizes):
      raise ValueError("Argument `hidden_sizes` must be a (possibly empty) list of positive "
                       f"integers. Received: hidden_sizes={hidden_sizes!r}")
    step_scale = validation.check_positive("step_scale", step_scale)
    self.hidden_sizes, self.step_scale = [int(h) for h in hidden_sizes], step_scale
    if anneal is not None:
      if isinstance(anneal, bool) or not isinstance(anneal, (int, float, np.number)) \
          or not np.isfinite(anneal) or anneal < 0:
        raise ValueError("Argument `anneal` must be None or a finite number >= 0. "
                         f"Received: anneal={anneal!r}")
      anneal = float(anneal)
      self.state_type = GPSGeneralAnnealState
    self.anneal = anneal
    if fan_in_reference is not None:
      fan_in_reference = validation.check_positive("fan_in_reference", fan_in_reference)
    self.fan_in_reference = fan_in_reference

  def layout_free(self, shape) -> bool:
    """True without `fan_in_reference`; with it False: the step depends on the shape."""
    del shape
    return self.fan_in_reference is None

  def width_scale(self, shape):
    """n0 / fan-in for a kernel of `shape` (rank >= 2), else 1.0; 1.0 without the option.

    Returns None where the option is on and the rank or the fan-in is not
    static (`apply` then computes the factor from the tensor's dynamic shape).

    Example:

    >>> import keras_l2o
    >>> rule = keras_l2o.rules.get("gps_general", fan_in_reference=48)
    >>> rule.width_scale([200, 200]), rule.width_scale([3, 3, 16, 8]), rule.width_scale([200])
    (0.24, 0.3333333333333333, 1.0)
    """
    if self.fan_in_reference is None:
      return 1.0
    shape = tf.TensorShape(shape)
    if shape.rank is not None and shape.rank < 2:
      return 1.0
    if shape.rank is None or not shape[:-1].is_fully_defined():
      return None
    return self.fan_in_reference / max(int(np.prod(shape[:-1].as_list())), 1)

  def _dynamic_width_scale(self, grad):
    """`width_scale` from the dynamic shape of `grad` (rank or fan-in unknown when traced)."""
    shape = tf.shape(grad)
    fan_in = tf.maximum(tf.cast(tf.reduce_prod(shape[:-1]), grad.dtype), 1.0)
    return tf.where(tf.rank(grad) >= 2, tf.constant(self.fan_in_reference, grad.dtype) / fan_in,
                    tf.ones([], grad.dtype))

  def num_magnitude_inputs(self) -> int:
    """1 (rho_m), or 2 (rho_m, psi) with `anneal`."""
    return 1 if self.anneal is None else 2

  def meta_param_shapes(self) -> dict:
    return {"skip": (NUM_DIRECTION_FEATURES, 1),
            "magnitude": {"kernel": (self.num_magnitude_inputs(), 1), "bias": (1,)},
            **gf.mlp_shapes(NUM_DIRECTION_FEATURES, self.hidden_sizes)}

  def init_meta_params(self, seed: int) -> dict:
    """He-style random hidden layers, a zero output layer and the skip on m_0.9 * rho."""
    rng = np.random.default_rng(seed)
    skip = np.zeros((NUM_DIRECTION_FEATURES, 1))
    skip[SKIP_FEATURE, 0] = -1.0
    kernel = np.zeros((self.num_magnitude_inputs(), 1))
    if self.anneal is not None:
      kernel[1, 0] = self.anneal
    params = {"skip": skip, "magnitude": {"kernel": kernel, "bias": np.zeros(1)},
              **gf.init_mlp(rng, NUM_DIRECTION_FEATURES, self.hidden_sizes)}
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  def init_state(self, var):
    return base.zeros_state(self, var)

  def direction(self, meta_params, features):
    """d = w_skip . f + MLP(f) on the 8 per-coordinate channels: `[..., 9] -> [...]`."""
    mp = base.cast_meta_params(meta_params, features.dtype)
    features = features[..., :NUM_DIRECTION_FEATURES]
    hidden = features
    for i in range(len(self.hidden_sizes)):
      layer = mp[f"hidden_{i}"]
      hidden = tf.nn.relu(tf.tensordot(hidden, layer["kernel"], 1) + layer["bias"])
    out = (tf.tensordot(features, mp["skip"], 1) + tf.tensordot(hidden, mp["output"]["kernel"], 1)
           + mp["output"]["bias"])
    return out[..., 0]

  def magnitude(self, meta_params, features, axis):
    """s per group of coordinates along `axis`: exp(3 tanh(a / 3)), a = w_mag rho_m + b_mag;
    with `anneal`, a = w_mag . (rho_m, psi) + b_mag and exp(10 tanh(a / 10)) for a < 0."""
    mag = base.cast_meta_params(meta_params["magnitude"], features.dtype)
    bound = tf.constant(MAGNITUDE_BOUND, features.dtype)
    if self.anneal is None:
      ratio = tf.reduce_mean(features[..., NUM_DIRECTION_FEATURES], axis=axis, keepdims=True)
      return tf.exp(bound * tf.tanh((ratio * mag["kernel"][0, 0] + mag["bias"][0]) / bound))
    inputs = tf.reduce_mean(features[..., NUM_DIRECTION_FEATURES:], axis=axis, keepdims=True)
    a = tf.tensordot(inputs, mag["kernel"], 1)[..., 0] + mag["bias"][0]
    lower = tf.constant(ANNEAL_LOWER_BOUND, features.dtype)
    return tf.exp(tf.where(a >= 0, bound * tf.tanh(a / bound), lower * tf.tanh(a / lower)))

  def step(self, meta_params, features, axis):
    """`step_scale * s * d / rms(d)`, s and the RMS over `axis` (the one formula)."""
    d = self.direction(meta_params, features)
    return (tf.constant(self.step_scale, d.dtype) * self.magnitude(meta_params, features, axis)
            * gf.rms_normalise(d, axis))

  def apply(self, meta_params, grad, var, state, step):
    del var, step
    axis = list(range(grad.shape.rank))
    features, new_state = observe(grad, state, axis)
    update = self.step(meta_params, features, axis)
    scale = self.width_scale(grad.shape)
    if scale is None:
      update = update * self._dynamic_width_scale(grad)
    elif scale != 1.0:  # else no op at all: graph rewrites of `* 1.0` could change the rounding
      update = update * tf.constant(scale, update.dtype)
    return update, new_state
