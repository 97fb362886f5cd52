"""Hand-designed optimizers written as rules.

They are the baselines of every evaluation and the oracles that prove the
machinery exact: `LearnedOptimizer(rules.get("adam"), learning_rate=1e-3)`
reproduces `keras.optimizers.Adam(1e-3)`, and likewise SGD, momentum, NAG,
RMSprop and Adagrad reproduce Keras's `SGD`, `SGD(momentum=m)`, `SGD(momentum=m,
nesterov=True)`, `RMSprop` and `Adagrad`, also under a learning-rate schedule:
the momentum rules fold the current rate into their velocity as Keras does
(`folds_learning_rate`), so their velocity is in units of the variable.
"""

import tensorflow as tf

from keras_l2o import validation
from keras_l2o.rules import base
from keras_l2o.rules import features


class SGD(base.Rule):
  """Plain gradient descent: `update = -grad`. No state."""

  name = "sgd"
  row_sparse = True  # a sparse gradient updates the touched rows only

  def init_state(self, var):
    return base.EmptyState()

  def apply(self, meta_params, grad, var, state, step):
    del meta_params, var, step
    return -grad, state


class Momentum(base.Rule):
  """Heavy-ball momentum as Keras's `SGD(momentum=...)`: `m <- momentum m - lr g; var += m`.

  The learning rate of the current step is folded into the velocity
  (`folds_learning_rate`), so the rule equals Keras under schedules too.

  Args:
    momentum: the decay of the velocity, in [0, 1).
  """

  name = "momentum"
  state_type = base.declare_state("MomentumState", momentum=None)
  folds_learning_rate = True
  _nesterov = False

  def __init__(self, *, momentum: float = 0.9):
    self.momentum = validation.check_decay("momentum", momentum)

  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step, learning_rate=1.0):
    """`(change of the variable, new_state)`: the rate is applied here (see the class doc)."""
    del meta_params, var, step
    mu = tf.constant(self.momentum, grad.dtype)
    scaled = grad * tf.cast(learning_rate, grad.dtype)
    m = state.momentum * mu - scaled
    update = m * mu - scaled if self._nesterov else m
    return update, type(state)(m)


class NAG(Momentum):
  """Nesterov momentum as Keras: `m <- momentum m - lr g; var += momentum m - lr g`.

  Args:
    momentum: the decay of the velocity, in [0, 1).
  """

  name = "nag"
  _nesterov = True


class RMSprop(base.Rule):
  """RMSprop as in Keras: `v <- rho v + (1 - rho) g^2; var -= lr g / sqrt(v + eps)`.

  With momentum, `m <- momentum m + lr g / sqrt(v + eps); var -= m`: the rate
  is folded into the velocity as Keras does (`folds_learning_rate`).

  Args:
    rho: decay of the squared-gradient average, in [0, 1).
    epsilon: added inside the square root.
    momentum: optional momentum on the normalised step, in [0, 1).
    centered: subtract the squared mean gradient from the second moment.
  """

  name = "rmsprop"
  folds_learning_rate = True

  def __init__(self, *, rho: float = 0.9, epsilon: float = 1e-7, momentum: float = 0.0,
               centered: bool = False):
    rho = validation.check_decay("rho", rho)
    epsilon = validation.check_positive("epsilon", epsilon)
    momentum = validation.check_decay("momentum", momentum)
    centered = validation.check_bool("centered", centered)
    self.rho, self.epsilon, self.momentum, self.centered = rho, epsilon, momentum, centered

  @property
  def state_type(self):
    """`velocity`, then `momentum` (with momentum > 0) and `average_gradient` (centered)."""
    fields = {"velocity": None}
    if self.momentum > 0:
      fields["momentum"] = None
    if self.centered:
      fields["average_gradient"] = None
    return base.declare_state("RMSpropState", **fields)

  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step, learning_rate=1.0):
    """`(change of the variable, new_state)`: the rate is applied here (see the class doc)."""
    del meta_params, var, step
    rho = self.rho
    new = dict(state._asdict())
    new["velocity"] = rho * state.velocity + (1 - rho) * tf.square(grad)
    if self.centered:
      new["average_gradient"] = rho * state.average_gradient + (1 - rho) * grad
      denominator = new["velocity"] - tf.square(new["average_gradient"]) + self.epsilon
    else:
      denominator = new["velocity"] + self.epsilon
    increment = (grad * tf.cast(learning_rate, grad.dtype)) / tf.sqrt(denominator)
    if self.momentum > 0:
      new["momentum"] = self.momentum * state.momentum + increment
      increment = new["momentum"]
    return -increment, type(state)(**new)


class Adam(base.Rule):
  """Adam (Kingma & Ba 2015) exactly as Keras computes it.

      m <- m + (g - m)(1 - beta_1);  v <- v + (g^2 - v)(1 - beta_2)
      update = -m sqrt(1 - beta_2^t) / (1 - beta_1^t) / (sqrt(v) + epsilon)

  One difference, where Keras's state overflows: a finite gradient whose
  square is infinite (|g| > 1.8e19 in float32) makes Keras's v infinite and,
  one step later, NaN (`inf - inf`), and the weights with it; here g^2 is
  clipped to a quarter of the dtype's largest number (`features.safe_square`,
  and g to the same bound in m, `features.bounded`), so the moving averages
  never compute `inf - inf`: the rule takes a finite step and recovers
  (tests/optimizer/test_numbers.py shows both).

  Args:
    beta_1: decay of the first moment, in [0, 1).
    beta_2: decay of the second moment, in [0, 1).
    epsilon: added to sqrt(v) (not bias-corrected, as in Keras).
    amsgrad: use the running maximum of v.
  """

  name = "adam"

  def __init__(self, *, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7,
               amsgrad: bool = False):
    beta_1 = validation.check_decay("beta_1", beta_1)
    beta_2 = validation.check_decay("beta_2", beta_2)
    epsilon = validation.check_positive("epsilon", epsilon)
    amsgrad = validation.check_bool("amsgrad", amsgrad)
    self.beta_1, self.beta_2, self.epsilon, self.amsgrad = beta_1, beta_2, epsilon, amsgrad

  @property
  def state_type(self):
    """`momentum`, `velocity`, and `velocity_hat` with amsgrad."""
    extra = {"velocity_hat": None} if self.amsgrad else {}
    return base.declare_state("AdamState", momentum=None, velocity=None, **extra)

  def init_state(self, var):
    return base.zeros_state(self, var)

  def apply(self, meta_params, grad, var, state, step):
    del meta_params, var
    dtype = grad.dtype
    alpha = tf.sqrt(features.bias_correction(self.beta_2, step, dtype)) / features.bias_correction(
        self.beta_1, step, dtype)
    m = features.ema(state.momentum, features.bounded(grad), self.beta_1)
    v = features.ema(state.velocity, features.safe_square(grad), self.beta_2)
    new = {"momentum": m, "velocity": v}
    if self.amsgrad:
      v = new["velocity_hat"] = tf.maximum(state.velocity_hat, v)
    update = -(m * alpha) / (tf.sqrt(v) + tf.constant(self.epsilon, dtype))
    return update, type(state)(**new)


class Adagrad(base.Rule):
  """Adagrad (Duchi et al. 2011) exactly as Keras computes it.

      a <- a + g^2  (a starts at initial_accumulator_value)
      update = -g / sqrt(a + epsilon)

  Args:
    initial_accumulator_value: starting value of the accumulator, >= 0.
    epsilon: added inside the square root, > 0.
  """

  name = "adagrad"
  state_type = base.declare_state("AdagradState", accumulator=None)
  row_sparse = True  # a sparse gradient updates the touched rows only, as Keras's Adagrad

  def __init__(self, *, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7):
    initial_accumulator_value = validation.check_non_negative("initial_accumulator_value",
                                                              initial_accumulator_value)
    epsilon = validation.check_positive("epsilon", epsilon)
    self.initial_accumulator_value, self.epsilon = initial_accumulator_value, epsilon

  def init_state(self, var):
    zeros = base.zeros_state(self, var)
    return type(zeros)(zeros.accumulator + tf.constant(self.initial_accumulator_value,
                                                       zeros.accumulator.dtype))

  def apply(self, meta_params, grad, var, state, step):
    del meta_params, var, step
    accumulator = state.accumulator + tf.square(grad)
    update = -grad / tf.sqrt(accumulator + tf.constant(self.epsilon, grad.dtype))
    return update, type(state)(accumulator)
