"""The coordinatewise LSTM rule of Andrychowicz et al. (2016).

One small two-layer LSTM is applied to every coordinate of every variable
independently, with shared weights and a hidden state per coordinate:

    x_t = preprocess(g_t)                      # 2 features per coordinate
    (h1, c1) = LSTM_1(x_t, h1, c1)
    (h2, c2) = LSTM_2(h1, h2, c2)
    update_t = output_scale * (W_out h2 + b_out)

State: 2 layers x (h, c) x hidden_size floats per parameter (80 with the
paper's 20 units).

Presets:

| preset    | preprocessing                     | output scale |
|-----------|-----------------------------------|--------------|
| `paper`   | log-and-sign, p = 10 (appendix A) | 0.1          |
| `dm_code` | clamped LogAndSign, k = 5         | 0.01         |

References:
  Andrychowicz et al., "Learning to learn by gradient descent by gradient
  descent", NeurIPS 2016, arXiv:1606.04474.
"""

import numpy as np
import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import features

PRESETS = {
    "paper": {"preprocessing": "log_sign", "preprocess_constant": 10.0, "output_scale": 0.1},
    "dm_code": {"preprocessing": "log_sign_clamped", "preprocess_constant": 5.0,
                "output_scale": 0.01},
}
PREPROCESSINGS = ("log_sign", "log_sign_clamped", "none")
# Coordinates per block of `LSTMRule.fast_apply`: a block's gate pre-activations
# ([block, 4 * hidden] floats) stay in the core's cache.
FAST_BLOCK = 4096
INITS = ("sign_momentum", "random", "zeros")


def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def lstm_cell(kernel, bias, x, h, c):
  """One LSTM step batched over coordinates; gates in the order i, f, g, o.

  Args:
    kernel: `[in + hidden, 4 * hidden]`.
    bias: `[4 * hidden]`.
    x: inputs `[n, in]`.
    h: hidden state `[n, hidden]`.
    c: cell state `[n, hidden]`.

  Returns:
    `(h_new, c_new)`, each `[n, hidden]`.
  """
  z = tf.matmul(tf.concat([x, h], axis=-1), kernel) + bias
  i, f, g, o = tf.split(z, 4, axis=-1)
  c_new = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
  h_new = tf.sigmoid(o) * tf.tanh(c_new)
  return h_new, c_new


def tf_cells(x, state, kernels, biases):
  """The rule's LSTM layers on TensorFlow ops: layer l's input is the new `h` of layer l - 1.

  Args:
    x: the first layer's inputs, `[n, in]`.
    state: `h` and `c` of each layer, `[n, hidden]` each.
    kernels: each layer's `[in + hidden, 4 * hidden]` kernel.
    biases: each layer's `[4 * hidden]` bias.

  Returns:
    The new `h` and `c` of each layer, in the order of `state`.
  """
  new_state = []
  for layer, (kernel, bias) in enumerate(zip(kernels, biases)):
    h, c = lstm_cell(kernel, bias, x, state[2 * layer], state[2 * layer + 1])
    new_state += [h, c]
    x = h
  return new_state


class LSTMRule(base.Rule):
  """Coordinatewise multi-layer LSTM update rule.

  Args:
    preset: `"paper"` (default) or `"dm_code"`; sets the defaults of
      `preprocessing`, `preprocess_constant` and `output_scale`.
    hidden_size: units per LSTM layer (20 in the paper).
    num_layers: number of stacked LSTM layers (2 in the paper); 0 leaves only
      the linear output layer on the preprocessed gradient (the public code's
      test configuration).
    preprocessing: `"log_sign"` (paper), `"log_sign_clamped"` (public code) or
      `"none"` (the raw gradient as the single input).
    preprocess_constant: p for `log_sign`, k for `log_sign_clamped`.
    output_scale: multiplies the linear output.
    init: `"sign_momentum"` (default): random weights plus one path through
      both layers wired so that, before meta-training, the rule takes steps of
      about `init_step` in the direction of minus the sign of a momentum of
      the gradient, so it already trains models; `"random"`: random weights
      only, as in the paper; `"zeros"`: every weight zero (the public code's
      test configuration: the rule starts by doing nothing).
    init_step: size of the initial steps for `init="sign_momentum"`.

  Example:

  >>> import keras_l2o
  >>> rule = keras_l2o.rules.get("lstm")
  >>> rule.state_floats_per_parameter()
  80
  >>> sorted(rule.init_meta_params(seed=0))
  ['layer1', 'layer2', 'output']
  """

  name = "lstm"
  # The function computing the LSTM layers in `apply` (`tf_cells`);
  # `keras_l2o.native.lstm_cells.for_meta_training` swaps in a native kernel.
  cells = staticmethod(tf_cells)

  def __init__(self, *, preset: str = "paper", hidden_size: int = 20, num_layers: int = 2,
               preprocessing: str = None, preprocess_constant: float = None,
               output_scale: float = None, init: str = "sign_momentum", init_step: float = 0.01):
    if not isinstance(preset, str) or preset not in PRESETS:
      raise ValueError(f"Unknown lstm preset {preset!r}. Valid presets: {sorted(PRESETS)}.")
    defaults = PRESETS[preset]
    preprocessing = defaults["preprocessing"] if preprocessing is None else preprocessing
    validation.check_choice("preprocessing", preprocessing, PREPROCESSINGS)
    validation.check_choice("init", init, INITS)
    hidden_size = validation.check_width("hidden_size", hidden_size)
    num_layers = validation.check_int("num_layers", num_layers, low=0,
                                      high=validation.MAX_LAYERS)
    if init == "sign_momentum" and num_layers == 0:
      init = "random"  # nothing to wire without layers
    if preprocess_constant is None:
      preprocess_constant = defaults["preprocess_constant"]
    if output_scale is None:
      output_scale = defaults["output_scale"]
    preprocess_constant = validation.check_positive("preprocess_constant", preprocess_constant)
    output_scale = validation.check_positive("output_scale", output_scale)
    init_step = validation.check_non_negative("init_step", init_step)
    self.preset, self.hidden_size, self.num_layers = preset, hidden_size, num_layers
    self.preprocessing, self.preprocess_constant = preprocessing, preprocess_constant
    self.output_scale, self.init, self.init_step = output_scale, init, init_step

  @property
  def state_type(self):
    """`h1, c1, h2, c2, ...`: each layer's hidden and cell state, `hidden_size` per parameter."""
    fields = {}
    for layer in range(1, self.num_layers + 1):
      fields.update({f"h{layer}": self.hidden_size, f"c{layer}": self.hidden_size})
    return base.declare_state("LSTMState", **fields)

  @property
  def input_size(self) -> int:
    return 1 if self.preprocessing == "none" else 2

  def preprocess(self, grad):
    """Per-coordinate input features, `[n] -> [n, input_size]`."""
    if self.preprocessing == "log_sign":
      return features.log_and_sign_paper(grad, self.preprocess_constant)
    if self.preprocessing == "log_sign_clamped":
      return features.log_and_sign_clamped(grad, self.preprocess_constant)
    return grad[..., None]

  # ------------------------------------------------------- meta-parameters --
  def meta_param_shapes(self) -> dict:
    hidden, fan_in, shapes = self.hidden_size, self.input_size, {}
    for layer in range(1, self.num_layers + 1):
      shapes[f"layer{layer}"] = {"kernel": (fan_in + hidden, 4 * hidden), "bias": (4 * hidden,)}
      fan_in = hidden
    shapes["output"] = {"kernel": (fan_in, 1), "bias": (1,)}
    return shapes

  def init_meta_params(self, seed: int) -> dict:
    hidden = self.hidden_size
    rng = np.random.default_rng(seed)
    params = {}
    fan_in = self.input_size
    for layer in range(1, self.num_layers + 1):
      kernel = rng.normal(0.0, 0.1, size=(fan_in + hidden, 4 * hidden))
      bias = np.zeros(4 * hidden)
      bias[hidden:2 * hidden] = 1.0  # forget gates start open
      params[f"layer{layer}"] = {"kernel": kernel, "bias": bias}
      fan_in = hidden
    out_kernel = rng.normal(0.0, 0.01, size=(fan_in, 1))
    out_bias = np.zeros(1)
    if self.init == "sign_momentum":
      out_kernel = self._wire_sign_momentum_path(params, out_kernel)
    elif self.init == "zeros":
      params = tf.nest.map_structure(np.zeros_like, params)
      out_kernel = np.zeros_like(out_kernel)
    params["output"] = {"kernel": out_kernel, "bias": out_bias}
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  def _wire_sign_momentum_path(self, params, out_kernel):
    """Wires unit 0 of every layer into a sign-of-momentum detector (numpy, in place)."""
    hidden = self.hidden_size
    sign_input = self.input_size - 1  # the sign-like feature (or the raw gradient)
    source = sign_input
    for layer in range(1, self.num_layers + 1):
      p = params[f"layer{layer}"]
      # Unit 0: candidate driven by the previous layer's unit 0 (or the input);
      # input and output gates open; the forget gate keeps a momentum.
      p["kernel"][:, [0, hidden, 2 * hidden, 3 * hidden]] = 0.0
      p["kernel"][source, 2 * hidden] = 3.0
      p["bias"][0] = 2.0
      p["bias"][hidden] = 1.0
      p["bias"][3 * hidden] = 2.0
      source = 0  # the next layer reads this unit as row 0 of its [h_below, h] input
    # Steady-state response of the top unit 0 to a constant sign of +1.
    x = np.zeros((1, self.input_size))
    x[0, sign_input] = 1.0
    state = [np.zeros((1, hidden)) for _ in range(2 * self.num_layers)]
    for _ in range(50):
      inp = x
      for layer in range(self.num_layers):
        p = params[f"layer{layer + 1}"]
        h, c = state[2 * layer], state[2 * layer + 1]
        z = np.concatenate([inp, h], -1) @ p["kernel"] + p["bias"]
        i, f, g, o = np.split(z, 4, -1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
        state[2 * layer], state[2 * layer + 1] = h, c
        inp = h
    response = float(state[2 * (self.num_layers - 1)][0, 0])
    out_kernel = np.zeros_like(out_kernel)
    out_kernel[0, 0] = -self.init_step / (self.output_scale * response)
    return out_kernel

  # ------------------------------------------------------------------ state --
  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step):
    del var, step
    dtype = grad.dtype
    mp = base.cast_meta_params(meta_params, dtype)
    hidden = self.hidden_size
    flat_grad = tf.reshape(grad, [-1])
    x = self.preprocess(flat_grad)
    layers = [mp[f"layer{layer + 1}"] for layer in range(self.num_layers)]
    new_state = self.cells(x, [tf.reshape(s, [-1, hidden]) for s in state],
                           [p["kernel"] for p in layers], [p["bias"] for p in layers])
    if new_state:  # the output layer reads the top layer's h (the features with 0 layers)
      x = new_state[-2]
    out = tf.matmul(x, mp["output"]["kernel"]) + mp["output"]["bias"]
    update = tf.reshape(out[:, 0] * tf.constant(self.output_scale, dtype), tf.shape(grad))
    state_shape = tf.concat([tf.shape(grad), [hidden]], 0)
    new_state = [tf.reshape(s, state_shape) for s in new_state]
    return update, type(state)(*new_state)

  def fast_apply(self, meta_params, grad, var, state, step):
    """`apply` over blocks of `FAST_BLOCK` coordinates, for XLA (`keras_l2o.step_paths`).

    The same function: the coordinates are independent, so the rule runs on
    consecutive blocks in a loop, which keeps each block's intermediates in
    cache instead of streaming `[n, 4 * hidden]` tensors through memory. Under
    XLA it differs from `apply` by rounding only (XLA's sigmoid and tanh).
    """
    size = grad.shape.num_elements()
    if size is None or size < 2 * FAST_BLOCK:
      return self.apply(meta_params, grad, var, state, step)
    hidden = self.hidden_size
    flat = tf.reshape(grad, [-1])
    flat_state = [tf.reshape(s, [-1, hidden]) for s in state]
    blocks = size // FAST_BLOCK
    main = blocks * FAST_BLOCK

    def block_step(args):
      update, new_state = self.apply(meta_params, args[0], None, type(state)(*args[1:]), step)
      return (update, *new_state)

    outputs = tf.map_fn(
        block_step,
        (tf.reshape(flat[:main], [blocks, FAST_BLOCK]),
         *[tf.reshape(s[:main], [blocks, FAST_BLOCK, hidden]) for s in flat_state]),
        fn_output_signature=(grad.dtype,) * (1 + len(flat_state)))
    outputs = [tf.reshape(o, [main, hidden] if i else [main]) for i, o in enumerate(outputs)]
    if main < size:
      rest = block_step((flat[main:], *[s[main:] for s in flat_state]))
      outputs = [tf.concat([o, r], 0) for o, r in zip(outputs, rest)]
    state_shape = tf.concat([tf.shape(grad), [hidden]], 0)
    return (tf.reshape(outputs[0], tf.shape(grad)),
            type(state)(*[tf.reshape(o, state_shape) for o in outputs[1:]]))
