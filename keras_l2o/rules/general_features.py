"""Accumulators and scale-free input channels of the `general` rule.

Every function is pure TensorFlow. A matrix here is a variable of rank >= 2:
its last two axes are rows and columns, leading axes (a conv kernel's spatial
taps) are a batch. Vectors and scalars (rank <= 1) only keep what the `general`
rule's Adam-like path needs.

State per variable (`GeneralState`):

| field | matrix [..., r, c] | vector / scalar |
|---|---|---|
| `momentum` | [3, ..., r, c]: EMAs of g at `MOMENTUM_DECAYS` | shape + [1]: EMA of g at 0.9 |
| `velocity` | [..., r, c]: EMA of g^2 at `VELOCITY_DECAY` | same |
| `rows` | [3, ..., r]: EMAs of the row means of g^2 at `FACTORED_DECAYS` | [1], unused |
| `cols` | [3, ..., c]: EMAs of the column means of g^2 | [1], unused |

So 4 floats per parameter, plus 3 per row and 3 per column of each matrix.
Matrices keep the decay axis first and the channels are stacked on a leading
axis too (`[15, ..., r, c]`, the 6 row / column channels at their own size):
every per-channel reduction and the stacking are then contiguous, which made
the rule ~2x faster than channels-last on CPU.

The channels (`CHANNELS`, in this order) are each divided by their RMS over
the last two axes of the matrix, so that multiplying the gradient (the loss)
or the parameters by a constant leaves them unchanged. That also makes bias
correction moot: it multiplies a whole tensor by one number.
"""

import numpy as np
import tensorflow as tf

from keras_l2o.rules import base

MOMENTUM_DECAYS = (0.9, 0.99, 0.999)
VELOCITY_DECAY = 0.95
FACTORED_DECAYS = (0.9, 0.99, 0.999)
# Relative floor of second moments: v + EPS_REL * mean(v) (+ TINY), a floor that
# scales with the tensor, so the rule stays invariant to the gradient's scale.
EPS_REL = 1e-10
TINY = 1e-30

# The extra dimensions are a vector's (what an exported SavedModel steps): momentum [n, 1],
# velocity [n], rows and cols [1] (unused). Matrices' shapes: `init_state`.
GeneralState = base.declare_state("GeneralState", momentum=1, velocity=None, rows=None, cols=None)

_D = ("0.9", "0.99", "0.999")
CHANNELS = (("grad", "param") + tuple(f"momentum_{d}" for d in _D) + ("grad_rsqrt_v",)
            + tuple(f"momentum_{d}_rsqrt_v" for d in _D)
            + tuple(f"grad_factored_{d}" for d in _D)
            + tuple(f"momentum_{d}_factored_{d}" for d in _D)
            + tuple(f"row_rsqrt_{d}" for d in _D) + tuple(f"col_rsqrt_{d}" for d in _D))
NUM_CHANNELS = len(CHANNELS)  # 21
NUM_PER_COORDINATE = NUM_CHANNELS - 6  # the last 6 are row / column channels
# Celo's training-progress features tanh(10 (t / T - c)), used when T is known.
TIME_CENTRES = (0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1)


def is_matrix(shape) -> bool:
  """Whether a variable of static `shape` takes the matrix (learned) path: rank >= 2."""
  return tf.TensorShape(shape).rank >= 2


def init_state(var, dtype) -> GeneralState:
  """Zeros shaped as in the table of the module docstring.

  Matrices need a static shape; vectors may have an unknown length (a
  SavedModel signature over vectors).
  """
  if var.shape.rank is not None and is_matrix(var.shape):
    shape, k = var.shape.as_list(), len(FACTORED_DECAYS)
    return GeneralState(tf.zeros([len(MOMENTUM_DECAYS)] + shape, dtype), tf.zeros(shape, dtype),
                        tf.zeros([k] + shape[:-1], dtype), tf.zeros([k] + shape[:-2] + shape[-1:],
                                                                   dtype))
  shape = tf.shape(var)
  return GeneralState(tf.zeros(tf.concat([shape, [1]], 0), dtype), tf.zeros(shape, dtype),
                      tf.zeros([1], dtype), tf.zeros([1], dtype))


def ema(average, value, decays, axis=-1):
  """`decays * average + (1 - decays) * value`, `decays` along `axis` (0 or -1)."""
  one_minus = tf.constant([1.0 - d for d in decays], average.dtype)
  if axis == 0:
    one_minus = tf.reshape(one_minus, [-1] + [1] * (average.shape.rank - 1))
  return average + (value - average) * one_minus


def floored_rsqrt(v, axis):
  """`1 / sqrt(v + EPS_REL * mean(v over axis) + TINY)`: a scale-equivariant rsqrt."""
  floor = EPS_REL * tf.reduce_mean(v, axis=axis, keepdims=True) + TINY
  return tf.math.rsqrt(v + tf.cast(floor, v.dtype))


def rms_normalise(x, axis):
  """`x / sqrt(mean(x^2 over axis) + TINY)`: every channel to RMS 1 over `axis`."""
  return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True)
                           + tf.constant(TINY, x.dtype))


def update_vector_state(grad, state):
  """The Adam-like path's accumulators: momentum 0.9 and second moment `VELOCITY_DECAY`."""
  m = ema(state.momentum, grad[..., None], MOMENTUM_DECAYS[:1])
  v = ema(state.velocity[..., None], tf.square(grad)[..., None], (VELOCITY_DECAY,))[..., 0]
  return GeneralState(m, v, state.rows, state.cols)


def update_matrix_state(grad, state):
  """All accumulators of a matrix (see the module docstring)."""
  square = tf.square(grad)
  m = ema(state.momentum, grad[None], MOMENTUM_DECAYS, axis=0)
  v = ema(state.velocity[None], square[None], (VELOCITY_DECAY,), axis=0)[0]
  rows = ema(state.rows, tf.reduce_mean(square, axis=-1)[None], FACTORED_DECAYS, axis=0)
  cols = ema(state.cols, tf.reduce_mean(square, axis=-2)[None], FACTORED_DECAYS, axis=0)
  return GeneralState(m, v, rows, cols)


def matrix_channels(grad, var, state: GeneralState):
  """The raw (unnormalised) channels of a matrix, in the order of `CHANNELS`.

  With R, C the row and column EMAs of g^2 at one decay, the factored second
  moment is Adafactor's `V_ij = R_i C_j / mean_i(R_i)`; `row_rsqrt` is
  `rsqrt(R_i / mean_i R_i)` (the same for every column of row i), `col_rsqrt`
  is `rsqrt(C_j / mean_j C_j)`.

  Returns:
    `(per_coordinate [15, ..., r, c], rows [3, ..., r], cols [3, ..., c])`:
    the last 6 channels are kept at the size of a row / column; broadcast
    over the matrix they are channels 15-20 of `CHANNELS`.
  """
  m = state.momentum  # [3, ..., r, c]
  rho = floored_rsqrt(state.velocity, [-2, -1])  # [..., r, c]
  rows, cols = state.rows, state.cols  # [3, ..., r], [3, ..., c]
  row_rel = rows / (tf.reduce_mean(rows, axis=-1, keepdims=True) + TINY)
  col_rel = cols / (tf.reduce_mean(cols, axis=-1, keepdims=True) + TINY)
  factored = row_rel[..., :, None] * cols[..., None, :]  # [3, ..., r, c]
  floor = EPS_REL * tf.reduce_mean(factored, axis=[-2, -1], keepdims=True) + TINY
  fac_rsqrt = tf.math.rsqrt(factored + floor)
  g = grad[None]
  per_coordinate = tf.concat([g, var[None], m, g * rho, m * rho, g * fac_rsqrt, m * fac_rsqrt],
                             axis=0)
  return per_coordinate, tf.math.rsqrt(row_rel + TINY), tf.math.rsqrt(col_rel + TINY)


def normalised_channels(grad, var, state):
  """`matrix_channels`, each divided by its RMS over the matrix's last two axes.

  A row feature's RMS over the matrix is its RMS over the rows (every column
  repeats it), likewise for columns, so those are normalised at their size.
  """
  per_coordinate, rows, cols = matrix_channels(grad, var, state)
  return (rms_normalise(per_coordinate, axis=[-2, -1]), rms_normalise(rows, axis=-1),
          rms_normalise(cols, axis=-1))


def time_features(step, num_training_steps, dtype):
  """`tanh(10 (t / T - c))` for c in `TIME_CENTRES`: a `[9]` vector (t the 1-based step)."""
  progress = tf.cast(step, dtype) / tf.constant(float(num_training_steps), dtype)
  return tf.tanh(10.0 * (progress - tf.constant(TIME_CENTRES, dtype)))


def mlp_shapes(fan_in: int, hidden_sizes) -> dict:
  """The shapes of `init_mlp`'s weights: `{"hidden_i": {"kernel", "bias"}, ..., "output": ...}`.

  Example:

  >>> mlp_shapes(3, (4,))
  {'hidden_0': {'kernel': (3, 4), 'bias': (4,)}, 'output': {'kernel': (4, 1), 'bias': (1,)}}
  """
  shapes = {}
  for i, width in enumerate(hidden_sizes):
    shapes[f"hidden_{i}"] = {"kernel": (fan_in, width), "bias": (width,)}
    fan_in = width
  shapes["output"] = {"kernel": (fan_in, 1), "bias": (1,)}
  return shapes


def init_mlp(rng, fan_in: int, hidden_sizes) -> dict:
  """A per-coordinate MLP's initial weights: He-style random hidden layers, a zero output layer.

  Args:
    rng: a `numpy.random.Generator` (its draws: one normal matrix per hidden layer, in order).
    fan_in: the number of input channels.
    hidden_sizes: the hidden layers' widths.

  Returns:
    `{"hidden_i": {"kernel", "bias"}, ..., "output": {"kernel", "bias"}}` of float64 arrays.

  Example:

  >>> import numpy as np
  >>> p = init_mlp(np.random.default_rng(0), 3, (4,))
  >>> p["hidden_0"]["kernel"].shape, float(np.abs(p["output"]["kernel"]).max())
  ((3, 4), 0.0)
  """
  params = {}
  for i, width in enumerate(hidden_sizes):
    params[f"hidden_{i}"] = {"kernel": rng.normal(0.0, 1.0 / np.sqrt(fan_in), (fan_in, width)),
                             "bias": np.zeros(width)}
    fan_in = width
  params["output"] = {"kernel": np.zeros((fan_in, 1)), "bias": np.zeros(1)}
  return params
