"""`general`: a learned optimizer built to generalise (after Celo2, Moudgil et al. 2026).

The rule absorbs the inductive biases that let Celo2 train models far beyond
its meta-training tasks (`GENERAL.md`), written from the papers' formulas:

* **Scale-free inputs.** For a matrix (rank >= 2) a per-parameter MLP reads 21
  channels (`general_features.CHANNELS`): the gradient, the parameter, three
  momenta (decays 0.9 / 0.99 / 0.999), gradient and momenta over the RMS of a
  second moment (0.95), over Adafactor's factored second moments (0.9 / 0.99 /
  0.999), and the factored row and column statistics. Each channel is divided
  by its RMS over the last two axes, so multiplying the loss, the gradient or
  the parameters by a constant changes nothing.
* **A nominal direction with controlled magnitude.** The MLP's output `d` is a
  skip connection plus a correction, `d = w_skip . f + MLP(f)`; for hidden
  matrices it is orthogonalised by 5 Newton–Schulz iterations
  (`orthogonalize=True`, as Muon and Celo2 do; the leading axes of a rank >= 3
  kernel are a batch: a conv kernel [h, w, in, out] is orthogonalised per
  spatial tap, a Keras `MultiHeadAttention` kernel [d, heads, head_dim] per
  input unit, which is not the [d, heads * head_dim] matrix Muon would use),
  then divided by its RMS over the last two axes. The update is
  `step_scale * d / rms(d)`: every matrix moves by exactly `step_scale` (times
  the optimizer's learning rate) in RMS at every step, whatever the MLP says.
* **A hand-designed path for vectors.** Biases, norm scales and scalars (rank
  <= 1) get Adam with beta_1 0.9, beta_2 0.95 and bias correction (its epsilon a
  relative floor, so the path is scale-free as well), at `step_scale *
  vector_scale`. Celo2 does the same for its 1-D parameters.
* **Embeddings.** A rule sees shapes, not names, so a Keras `Embedding` (rank 2)
  takes the matrix path: its rows without gradient stay untouched by
  orthogonalisation (zero columns of the wide matrix stay zero) but move with
  their momentum. Celo2 routes embeddings to its Adam path by name; keras_l2o
  would need a per-variable hook in `LearnedOptimizer` for that (not built).
* **Training progress, only when given.** With `num_training_steps=T` the MLP
  also reads Celo's 9 features `tanh(10 (t / T - c))`; off by default, and
  nothing else about the run is assumed.

State: 4 floats per parameter (3 momenta and one second moment) plus 3 per
row and 3 per column of every matrix (`general_features.init_state`).

Initialisation: the MLP's output layer is zero and `w_skip` is -1 on the 0.9
momentum (`orthogonalize=True`: the rule *is* Muon without Nesterov, at RMS
step `step_scale`, Adam on vectors) or on the 0.9 momentum over the RMS of the
second moment (`orthogonalize=False`: RMS-normalised Adam). Meta-training
starts from a working optimizer and learns a correction.

Example:

>>> import keras_l2o
>>> rule = keras_l2o.rules.get("general")
>>> rule.state_floats_per_parameter()
4
>>> sorted(rule.meta_param_shapes())
['hidden_0', 'hidden_1', 'output', 'skip']

References:
  Moudgil et al., "Celo2", arXiv 2602.19142; Moudgil et al., "Celo", arXiv
  2501.12670; Metz et al., arXiv 2203.11860 (AdafacMLPLOpt); Jordan et al.,
  "Muon" (2024); Shazeer & Stern, "Adafactor" (2018).
"""

import numpy as np
import tensorflow as tf

from keras_l2o.rules import base
from keras_l2o.rules import features
from keras_l2o.rules import general_features as gf
from keras_l2o.rules import newton_schulz

# The channel the skip connection starts on, by `orthogonalize`.
SKIP_CHANNEL = {True: gf.CHANNELS.index("momentum_0.9"),
                False: gf.CHANNELS.index("momentum_0.9_rsqrt_v")}


class GeneralRule(base.Rule):
  """Scale-free per-parameter MLP with Newton–Schulz and RMS-normalised steps.

  Args:
    hidden_sizes: widths of the MLP's hidden layers (ReLU).
    step_scale: the RMS of every matrix's update (and the Adam step of
      vectors), before the optimizer's `learning_rate`.
    orthogonalize: orthogonalise the direction of matrices by Newton–Schulz.
    ns_steps: Newton–Schulz iterations.
    vector_scale: the Adam-like path's step relative to `step_scale`.
    num_training_steps: None (default), or the run's number of steps T: the
      MLP then also reads the training-progress features.
    orthogonalize_max_dim: None (default: every matrix), or an integer: with
      `orthogonalize`, matrices whose smaller side (the size of Newton–Schulz's
      Gram matrix) exceeds it skip Newton–Schulz and are only RMS-normalised.
      Newton–Schulz costs ~30 x that side flops per entry, so on a CPU it
      dominates the step of large square kernels (docs/GENERAL_RULE.md); this
      changes the rule's function for those matrices, so set it only when
      speed matters more than matching the meta-trained function.

  Raises:
    ValueError: for a bad argument (the message names it and what it got).
  """

  name = "general"
  state_type = gf.GeneralState
  omitted_when_none = ("orthogonalize_max_dim",)  # added after the first runs were saved

  def __init__(self, *, hidden_sizes=(8, 8), step_scale: float = 1e-3, orthogonalize: bool = True,
               ns_steps: int = 5, vector_scale: float = 1.0, num_training_steps=None,
               orthogonalize_max_dim=None):
    hidden_sizes = list(hidden_sizes) if isinstance(hidden_sizes, (list, tuple)) else hidden_sizes
    if not isinstance(hidden_sizes, list) or not hidden_sizes or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden_sizes):
      raise ValueError("Argument `hidden_sizes` must be a non-empty list of positive integers. "
                       f"Received: hidden_sizes={hidden_sizes!r}")
    if not isinstance(orthogonalize, bool):
      raise ValueError(f"Argument `orthogonalize` must be True or False. "
                       f"Received: orthogonalize={orthogonalize!r}")
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or ns_steps < 1:
      raise ValueError(f"Argument `ns_steps` must be a positive integer. Received: ns_steps="
                       f"{ns_steps!r}")
    for arg, value in (("step_scale", step_scale), ("vector_scale", vector_scale)):
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"Argument `{arg}` must be a positive number. Received: {arg}={value!r}")
    if num_training_steps is not None and (
        isinstance(num_training_steps, bool) or not isinstance(num_training_steps, int)
        or num_training_steps < 1):
      raise ValueError("Argument `num_training_steps` must be a positive integer or None. "
                       f"Received: num_training_steps={num_training_steps!r}")
    if orthogonalize_max_dim is not None and (
        isinstance(orthogonalize_max_dim, bool) or not isinstance(orthogonalize_max_dim, int)
        or orthogonalize_max_dim < 1):
      raise ValueError("Argument `orthogonalize_max_dim` must be a positive integer or None. "
                       f"Received: orthogonalize_max_dim={orthogonalize_max_dim!r}")
    self.hidden_sizes = hidden_sizes
    self.step_scale = float(step_scale)
    self.orthogonalize = orthogonalize
    self.ns_steps = ns_steps
    self.vector_scale = float(vector_scale)
    self.num_training_steps = num_training_steps
    self.orthogonalize_max_dim = orthogonalize_max_dim

  @property
  def num_inputs(self) -> int:
    """Inputs of the MLP: the 21 channels, plus 9 time features with `num_training_steps`."""
    return gf.NUM_CHANNELS + (len(gf.TIME_CENTRES) if self.num_training_steps else 0)

  # ------------------------------------------------------- meta-parameters --
  def meta_param_shapes(self) -> dict:
    return {"skip": (self.num_inputs, 1), **gf.mlp_shapes(self.num_inputs, self.hidden_sizes)}

  def init_meta_params(self, seed: int) -> dict:
    """He-style random hidden layers, a zero output layer and the skip on one momentum."""
    rng = np.random.default_rng(seed)
    skip = np.zeros((self.num_inputs, 1))
    skip[SKIP_CHANNEL[self.orthogonalize], 0] = -1.0
    params = {"skip": skip, **gf.init_mlp(rng, self.num_inputs, self.hidden_sizes)}
    return tf.nest.map_structure(lambda a: tf.constant(a, tf.float32), params)

  # ------------------------------------------------------------------ state --
  def state_floats_per_parameter(self) -> int:
    """4 (3 momenta, 1 second moment); matrices add 3 floats per row and per column."""
    return 4

  def layout_free(self, shape) -> bool:
    """False: the step depends on the shape (per-matrix normalisation, Newton–Schulz)."""
    del shape
    return False

  def init_state(self, var):
    return gf.init_state(var, self.state_dtype(var.dtype))

  # ------------------------------------------------------------------ apply --
  def direction(self, meta_params, grad, var, state, step):
    """The raw direction `d = w_skip . f + MLP(f)` of a matrix and its new state.

    Computed channels-first: `W^T [15, n]` products instead of `[n, 21] W`.
    The row / column channels enter through their products with the kernel
    at row / column size, the time features (the same for every coordinate)
    as a bias: the same function as the MLP on all channels broadcast.
    """
    new_state = gf.update_matrix_state(grad, state)
    per_coordinate, rows, cols = gf.normalised_channels(grad, var, new_state)
    k = gf.NUM_PER_COORDINATE
    flat = tf.reshape(per_coordinate, [k, -1])

    def linear(kernel, bias):  # kernel [21 (+ 9 time), out] -> [out, n]
      out = tf.matmul(kernel[:k], flat, transpose_a=True) + bias[:, None]
      # Row / column channels: their product with the kernel, per row and per column.
      per_row = tf.tensordot(kernel[k:k + 3], rows, axes=[[0], [0]])  # [out, ..., r]
      per_col = tf.tensordot(kernel[k + 3:gf.NUM_CHANNELS], cols, axes=[[0], [0]])
      out += tf.reshape(per_row[..., :, None] + per_col[..., None, :], tf.shape(out))
      if self.num_training_steps:
        times = gf.time_features(step, self.num_training_steps, grad.dtype)
        out += tf.matmul(kernel[gf.NUM_CHANNELS:], times[:, None], transpose_a=True)
      return out

    first = meta_params["hidden_0"]
    hidden = tf.nn.relu(linear(first["kernel"], first["bias"]))
    for i in range(1, len(self.hidden_sizes)):
      layer = meta_params[f"hidden_{i}"]
      hidden = tf.nn.relu(tf.matmul(layer["kernel"], hidden, transpose_a=True)
                          + layer["bias"][:, None])
    out = (linear(meta_params["skip"], meta_params["output"]["bias"])
           + tf.matmul(meta_params["output"]["kernel"], hidden, transpose_a=True))
    return tf.reshape(out, tf.shape(grad)), new_state

  def apply(self, meta_params, grad, var, state, step):
    dtype = grad.dtype
    scale = tf.constant(self.step_scale, dtype)
    if not gf.is_matrix(grad.shape):
      new_state = gf.update_vector_state(grad, state)
      m_hat = new_state.momentum[..., 0] / features.bias_correction(gf.MOMENTUM_DECAYS[0], step,
                                                                    dtype)
      v_hat = new_state.velocity / features.bias_correction(gf.VELOCITY_DECAY, step, dtype)
      adam = m_hat * gf.floored_rsqrt(v_hat, list(range(grad.shape.rank)))
      return -scale * tf.constant(self.vector_scale, dtype) * adam, new_state
    d, new_state = self.direction(base.cast_meta_params(meta_params, dtype), grad, var, state, step)
    return self.finish(d), new_state

  def orthogonalises(self, shape) -> bool:
    """Whether a matrix of static `shape` is orthogonalised (`orthogonalize`, `orthogonalize_max_dim`)."""
    if not self.orthogonalize:
      return False
    return self.orthogonalize_max_dim is None or min(shape[-2:]) <= self.orthogonalize_max_dim

  def finish(self, d):
    """A matrix's update from its raw direction `d`: Newton–Schulz (where it applies), RMS, scale."""
    if self.orthogonalises(d.shape):
      d = newton_schulz.orthogonalise(d, self.ns_steps)
    return tf.constant(self.step_scale, d.dtype) * gf.rms_normalise(d, axis=[-2, -1])
