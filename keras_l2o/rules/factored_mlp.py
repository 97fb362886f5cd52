"""The mlp rule with a factored second moment: a low-memory learned optimizer.

The `mlp` rule keeps three floats per parameter: a fast momentum m, a slow
momentum s and a second moment v. For a matrix (the last two dimensions of a
variable of rank >= 2, e.g. a dense kernel [fan_in, fan_out] or a conv kernel
[h, w, in, out]) this rule replaces v by Adafactor's rank-1 factorisation
(Shazeer & Stern, 2018): exponential averages of the row means R and the column
means C of g^2, from which

    v_ij = R_i C_j / mean_i(R_i)

(exact whenever g^2 itself is a rank-1 outer product). Everything else is the
mlp rule: the same features `[g, m_hat, s_hat] / (sqrt(v_hat) + epsilon)` and
the same network, so meta-parameters of one rule run in the other. State: 2
floats per parameter plus one float per row and per column of each matrix.

Vectors (biases, scales) keep the full v. Every matrix is factored by default,
as Keras's Adafactor does: a thin one loses nothing (for a [n, 1] kernel the
factored v is exactly the full one) and still saves nearly all of v's memory;
`min_dim_to_factor` keeps the full v for matrices with a shorter side.
"""

import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import features
from keras_l2o.rules import mlp

# The state of a vector; a factored matrix's `velocity_rows` and `velocity_cols`
# are its row and column averages (`FactoredMLPRule`), a vector's `velocity_cols` is [1].
FactoredState = base.declare_state("FactoredState", momentum=None, slow_momentum=None,
                                   velocity_rows=None, velocity_cols=None)


def factored_second_moment(rows, cols):
  """`v_ij = R_i C_j / mean_i(R_i)` from the row and column averages, never NaN.

  Computed as `(R_i C_j) / mean(R)`, the numbers the shipped optimizers were
  trained with. Where the product overflows (R_i C_j > 3.4e38 in float32,
  after gradients above about 1e9), v would be inf, the coordinate's
  normalised features 0 and the coordinate frozen for thousands of steps;
  there it is computed as `R_i (C_j / mean(R))` instead. The mean is clipped
  (`features.mean_below_max`), so it is finite too.
  """
  mean_rows = features.mean_below_max(rows, -1, keepdims=True)[..., None]
  v = rows[..., :, None] * cols[..., None, :] / mean_rows
  return tf.where(tf.math.is_finite(v), v, rows[..., :, None] * (cols[..., None, :] / mean_rows))


class FactoredMLPRule(mlp.MLPRule):
  """`mlp` with Adafactor's factored second moment (about 2 floats of state per parameter).

  For a variable with `is_factored(shape)`, `velocity_rows` has shape
  `shape[:-1]` and `velocity_cols` shape `shape[:-2] + shape[-1:]`; otherwise
  `velocity_rows` is the full second moment (shaped like the variable) and
  `velocity_cols` an unused `[1]`.

  Args:
    min_dim_to_factor: a variable is factored when its rank is at least 2 and
      both of its last two dimensions are at least this long.
    epsilon_1: added to g^2 before averaging, so that R and C stay positive.
    **mlp_config: the `mlp` rule's arguments (hidden_size, beta_1, beta_slow,
      beta_2, epsilon, step_scale, weight_scale; not collapse_decades).

  Example:

  >>> import tensorflow as tf, keras_l2o
  >>> rule = keras_l2o.rules.get("mlp_factored")
  >>> state = rule.init_state(tf.zeros([512, 256]))
  >>> [tuple(s.shape) for s in state]
  [(512, 256), (512, 256), (512,), (256,)]
  """

  name = "mlp_factored"
  state_type = FactoredState

  def __init__(self, *, min_dim_to_factor: int = 1, epsilon_1: float = 1e-30, **mlp_config):
    min_dim_to_factor = validation.check_int("min_dim_to_factor", min_dim_to_factor, low=1)
    epsilon_1 = validation.check_positive("epsilon_1", epsilon_1)
    if mlp_config.get("collapse_decades") is not None:
      raise ValueError("Argument `collapse_decades` is not supported by rule 'mlp_factored' "
                       "(its state has no per-variable statistics). Received: collapse_decades="
                       f"{mlp_config['collapse_decades']!r}")
    super().__init__(**mlp_config)
    self.min_dim_to_factor, self.epsilon_1 = min_dim_to_factor, epsilon_1

  @classmethod
  def config_names(cls) -> list:
    """The `mlp` rule's keys, then `min_dim_to_factor` and `epsilon_1`."""
    return mlp.MLPRule.config_names() + ["min_dim_to_factor", "epsilon_1"]

  def is_factored(self, shape) -> bool:
    """Whether a variable of static `shape` gets the factored second moment."""
    shape = tf.TensorShape(shape)
    if shape.rank is None or shape.rank < 2 or None in shape.as_list()[-2:]:
      return False
    return min(shape[-2], shape[-1]) >= self.min_dim_to_factor

  def layout_free(self, shape) -> bool:
    """False: the step depends on the shape (a vector laid out as a matrix would be factored)."""
    del shape
    return False

  def state_floats_per_parameter(self) -> int:
    """2 for factored matrices (plus one float per row and column); 3 for the rest."""
    return 2

  def init_state(self, var):
    dtype = self.state_dtype(var.dtype)
    zeros = tf.zeros(tf.shape(var), dtype)
    if self.is_factored(var.shape):
      shape = var.shape.as_list()
      return FactoredState(zeros, zeros, tf.zeros(shape[:-1], dtype),
                           tf.zeros(shape[:-2] + shape[-1:], dtype))
    return FactoredState(zeros, zeros, zeros, tf.zeros([1], dtype))

  def features(self, grad, state, step):
    beta_2 = self.betas["beta_2"]
    dtype = grad.dtype
    square = features.safe_square(grad) + tf.constant(self.epsilon_1, dtype)
    if self.is_factored(grad.shape):
      rows = features.ema(state.velocity_rows, features.mean_below_max(square, -1), beta_2)
      cols = features.ema(state.velocity_cols, features.mean_below_max(square, -2), beta_2)
      v = factored_second_moment(rows, cols)
    else:
      rows = features.ema(state.velocity_rows, square, beta_2)
      cols = state.velocity_cols
      v = rows
    m = features.ema(state.momentum, features.bounded(grad), self.betas["beta_1"])
    s = features.ema(state.slow_momentum, features.bounded(grad), self.betas["beta_slow"])
    feats = mlp.normalised_features(grad, m, s, v, step, **self.betas)
    return feats, FactoredState(m, s, rows, cols)
