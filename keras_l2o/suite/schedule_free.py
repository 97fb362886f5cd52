"""Schedule-free AdamW (Defazio et al., 2024) as its paper defines it, for the suite's baseline.

`keras.optimizers.ScheduleFreeAdamW` (Keras 3.15.1) keeps the model's weights
at `y`, the gradient point, and the base sequence `z` as its `momentum` slot,
and recovers the average `x = (y - (1 - beta_1) z) / beta_1` each step. It
reads the `z` of that formula after it has already updated `z` (the value it
calls `momentum_old` is the variable, not a copy), and the algebra then
collapses: `y` becomes the plain running average of the `z`s, whatever
`beta_1` is. Gradients are taken at that average, which moves by `1/t` of the
way to `z` at step t: the method the paper contrasts schedule-free with
(primal averaging), slow once t is large. On `f(w) = |w - 3|^2 / 2` at rate
0.1, Keras's `y` after 50 steps is 2.13773, equal to primal averaging to 5
digits, where the documented algorithm gives 2.25074.

Keras's optimizer also starts `z` from its `momentum` slot, which its
`build` sets to the initial weights; under `model.fit` that assignment does not
reach the slot, `z` starts at 0 and the first step (average weight 1) sets every
weight to about `-lr * sign(g)`: the initialisation is wiped and the hidden
units of a layer become alike. A 3-unit Dense layer fitted one step at rate 1e-9
ends with mean |kernel| 1e-9 (0.358 before).

`ScheduleFreeAdamW` here is Keras's optimizer with both corrected: at the first
step `z` is the weights, `z` is read before it is updated, and the average
weights step t by the square of its warmed-up learning rate
(`c_t = lr_t^2 / sum_{i<=t} lr_i^2`, the reference implementation's default),
so that warm-up steps, taken at a small rate, count less. The model's weights
stay at `y` during training, as in Keras; the training loss Keras reports is
therefore the loss at `y`, and so are the validation and test losses.

Example:

>>> import numpy as np, keras
>>> w = keras.Variable(np.zeros(1, np.float32))
>>> optimizer = ScheduleFreeAdamW(0.1)
>>> for _ in range(50):
...   optimizer.apply([w.value - 3.0], [w])
>>> round(float(w.numpy()[0]), 3)
2.251
"""

import keras
from keras import ops


def _sum_of_squared_warmup(step, warmup):
  """`sum_{i<=step} min(i / warmup, 1)^2` in closed form (`warmup` >= 1)."""
  m = ops.minimum(step, warmup)
  return m * (m + 1.0) * (2.0 * m + 1.0) / (6.0 * warmup * warmup) + ops.maximum(
      step - warmup, 0.0)


class ScheduleFreeAdamW(keras.optimizers.ScheduleFreeAdamW):
  """`keras.optimizers.ScheduleFreeAdamW` with the update of its paper (see the module).

  Same arguments as Keras's. The learning rate must be a constant (the method
  needs no schedule; `warmup_steps` ramps it linearly from 0).
  """

  def update_step(self, gradient, variable, learning_rate):
    dtype = variable.dtype
    peak = ops.cast(learning_rate, dtype)
    gradient = ops.cast(gradient, dtype)
    step = ops.cast(self.iterations + 1, dtype)
    beta_1 = ops.cast(self.beta_1, dtype)
    beta_2 = ops.cast(self.beta_2, dtype)
    warmup = ops.cast(max(int(self.warmup_steps), 1), dtype)
    ramp = ops.minimum(step / warmup, 1.0) if self.warmup_steps > 0 else ops.ones((), dtype)
    index = self._get_variable_index(variable)
    z, velocity = self._momentums[index], self._velocities[index]
    y_old = ops.copy(variable)
    # Read now, as a tensor (`z` is assigned below). At the first step `z` is the initial
    # weights, not the slot: under `model.fit` the slot keeps its zero initial value.
    z_old = ops.where(self.iterations == 0, y_old, ops.copy(z))
    x_old = (y_old - (1.0 - beta_1) * z_old) / beta_1
    self.assign_add(velocity, (ops.square(gradient) - velocity) * (1.0 - beta_2))
    denominator = ops.sqrt(velocity / (1.0 - ops.power(beta_2, step))) + self.epsilon
    z_new = z_old - peak * ramp * gradient / denominator
    self.assign(z, z_new)
    if self.warmup_steps > 0:
      weight = ramp * ramp / _sum_of_squared_warmup(step, warmup)
    else:
      weight = 1.0 / step
    x_new = x_old + weight * (z_new - x_old)
    self.assign(variable, (1.0 - beta_1) * z_new + beta_1 * x_new)
