"""Step-size adaptation of the KL budget between GPS iterations (GPS.md 3.6).

The LQG objective of a local policy under a local model is

    J(psi; model) = Sum_t E[c_t] + nu_t E[KL(psi_t || pi_lin_t)]

with the expectations under psi running in the model's linear dynamics. The
predicted improvement is what the old model promised for the new policy, the
actual improvement what the model refitted on the new samples says:

    predicted = J(psi_prev; old) - J(psi_cur; old)
    actual    = J(psi_prev; old) - J(psi_cur; new)

and the KL step multiplier grows when the two agree and shrinks when they do not.

Example:

  >>> float(adjust_step_mult(predicted=1.0, actual=0.5, step_mult=2.0))
  2.0
"""

from typing import NamedTuple, Optional

import tensorflow as tf

from . import gaussians
from . import types

MIN_NEW_MULT = 0.1
MAX_NEW_MULT = 5.0
MIN_DENOMINATOR = 1e-4


class LQGModel(NamedTuple):
  """The local model one iteration's LQG objective is measured under.

  Attributes:
    dynamics: `LinearDynamics`, batch shape `...`.
    cost: `QuadraticCost` expanded on that iteration's samples.
    pi_lin: linearised global policy, or None for no KL term.
    nu: [..., T] weights of the KL to pi_lin, or None (needs pi_lin None too).
  """
  dynamics: types.LinearDynamics
  cost: types.QuadraticCost
  pi_lin: Optional[types.LinearGaussianPolicy] = None
  nu: Optional[tf.Tensor] = None


def lqg_objective(policy: types.LinearGaussianPolicy, model: LQGModel):
  """J(psi; model) = Sum_t E[c_t] + nu_t E[KL(psi_t || pi_lin_t)] under the model's dynamics.

  Args:
    policy: the local policy, batch shape `...`.
    model: the `LQGModel`.

  Returns:
    [...] float64 objective.

  Raises:
    ValueError: when exactly one of `model.pi_lin`, `model.nu` is given.
  """
  if (model.pi_lin is None) != (model.nu is None):
    raise ValueError("LQGModel needs both pi_lin and nu or neither; received "
                     f"pi_lin={'None' if model.pi_lin is None else 'a policy'}, "
                     f"nu={'None' if model.nu is None else 'a tensor'}.")
  marginals = gaussians.forward_marginals(policy, model.dynamics)
  total = gaussians.expected_cost(policy, model.dynamics, model.cost, marginals=marginals)
  if model.pi_lin is not None:
    kl = gaussians.policy_kl(policy, model.pi_lin, marginals.x_mean, marginals.x_cov)
    total += tf.reduce_sum(gaussians.to_float64(model.nu) * kl, axis=-1)
  return total


def predicted_and_actual_improvement(prev_policy: types.LinearGaussianPolicy,
                                     cur_policy: types.LinearGaussianPolicy,
                                     old_model: LQGModel, new_model: LQGModel):
  """The predicted and actual improvements of GPS.md 3.6.

  Args:
    prev_policy: psi_prev, the policy the previous samples were drawn from.
    cur_policy: psi_cur, the policy the latest samples were drawn from.
    old_model: dynamics, cost, pi_lin and nu fitted on the previous samples.
    new_model: the same fitted on the latest samples.

  Returns:
    `(predicted, actual)`, each [...] float64:
    predicted = J(psi_prev; old) - J(psi_cur; old),
    actual = J(psi_prev; old) - J(psi_cur; new).
  """
  previous = lqg_objective(prev_policy, old_model)
  predicted = previous - lqg_objective(cur_policy, old_model)
  actual = previous - lqg_objective(cur_policy, new_model)
  return predicted, actual


def adjust_step_mult(predicted, actual, step_mult, min_mult=0.01, max_mult=10.0):
  """New KL step multiplier from predicted and actual improvement (GPS.md 3.6).

      new_mult = clip(predicted / (2 max(1e-4, predicted - actual)), 0.1, 5)
      step_mult <- clip(new_mult * step_mult, min_mult, max_mult)

  An actual improvement of half the predicted one keeps the multiplier; a model
  that was right (actual >= predicted) multiplies it by 5; a much worse actual
  outcome divides it by 10.

  Args:
    predicted: scalar or [...] predicted improvement.
    actual: scalar or [...] actual improvement.
    step_mult: scalar or [...] current multiplier.
    min_mult: smallest allowed multiplier (> 0).
    max_mult: largest allowed multiplier (>= min_mult).

  Returns:
    float64 tensor of the broadcast shape: the new multiplier.

  Raises:
    ValueError: for an invalid [min_mult, max_mult] range.
  """
  if not 0.0 < min_mult <= max_mult:
    raise ValueError(f"Need 0 < min_mult <= max_mult; received min_mult={min_mult}, "
                     f"max_mult={max_mult}.")
  predicted, actual, step_mult = (gaussians.to_float64(value)
                                  for value in (predicted, actual, step_mult))
  new_mult = predicted / (2.0 * tf.maximum(tf.constant(MIN_DENOMINATOR, tf.float64),
                                           predicted - actual))
  new_mult = tf.clip_by_value(new_mult, MIN_NEW_MULT, MAX_NEW_MULT)
  return tf.clip_by_value(new_mult * step_mult, tf.constant(min_mult, tf.float64),
                          tf.constant(max_mult, tf.float64))
