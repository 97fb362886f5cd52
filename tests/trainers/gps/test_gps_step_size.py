"""GPS step-size adaptation: the multiplier rule and the LQG-predicted improvements."""

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from trainers.gps import step_size
from trainers.gps import types


def _scalar_policy(gain, offset, variance):
  return types.LinearGaussianPolicy(K=np.full([1, 1, 1], gain), k=np.full([1, 1], offset),
                                    G=np.full([1, 1, 1], variance))


def _scalar_model(cc=0.3, nu=None):
  """T = 1, dX = dU = 1: x0 ~ N(1, 0.5), c = (x^2 + u^2)/2 + 0.1 x - 0.2 u + cc."""
  dynamics = types.LinearDynamics(F=np.ones([1, 1, 2]), f=np.zeros([1, 1]), W=np.ones([1, 1, 1]),
                                  x0_mean=np.ones(1), x0_cov=np.full([1, 1], 0.5))
  cost = types.QuadraticCost(Cm=np.eye(2)[None], cv=np.array([[0.1, -0.2]]), cc=np.array([cc]))
  pi_lin = None if nu is None else _scalar_policy(0.0, 0.0, 1.0)
  return step_size.LQGModel(dynamics=dynamics, cost=cost, pi_lin=pi_lin,
                            nu=None if nu is None else np.array([nu]))


def _hand_objective(gain, offset, variance, cc=0.3, nu=0.0):
  """The same objective by hand: E[x] = 1, E[x^2] = 1.5, u = gain x + offset + noise."""
  u_mean = gain + offset
  u_square = u_mean**2 + gain**2 * 0.5 + variance
  cost = 0.5 * (1.5 + u_square) + 0.1 - 0.2 * u_mean + cc
  # E_x KL(N(gain x + offset, variance) || N(0, 1)).
  kl = 0.5 * (variance + u_mean**2 + gain**2 * 0.5 - 1.0 - math.log(variance))
  return cost + nu * kl


class AdjustStepMultTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters(
      ("half_the_predicted_keeps", 1.0, 0.5, 1.0),
      ("as_predicted_grows_5x", 1.0, 1.0, 5.0),
      ("better_than_predicted_grows_5x", 1.0, 3.0, 5.0),
      ("much_worse_shrinks_10x", 1.0, -1e3, 0.1),
      ("quarter_of_predicted", 1.0, 0.25, 2.0 / 3.0),
      ("predicted_worse_shrinks_10x", -1.0, -2.0, 0.1),
  )
  def test_multiplier(self, predicted, actual, expected):
    self.assertAllClose(step_size.adjust_step_mult(predicted, actual, 1.0), expected, rtol=1e-12)
    self.assertAllClose(step_size.adjust_step_mult(predicted, actual, 0.5), 0.5 * expected,
                        rtol=1e-12)

  def test_result_is_clipped_and_batched(self):
    mult = step_size.adjust_step_mult([1.0, 1.0, 1.0], [1.0, -1e3, 0.5], [4.0, 0.05, 3.0])
    self.assertAllClose(mult, [10.0, 0.01, 3.0], rtol=1e-12)
    mult = step_size.adjust_step_mult(1.0, 1.0, 1.0, min_mult=0.5, max_mult=2.0)
    self.assertAllClose(mult, 2.0, rtol=1e-12)

  def test_rejects_bad_range(self):
    with self.assertRaisesRegex(ValueError, r"Need 0 < min_mult <= max_mult; received "
                                r"min_mult=2.0, max_mult=1.0"):
      step_size.adjust_step_mult(1.0, 0.5, 1.0, min_mult=2.0, max_mult=1.0)


class ImprovementTest(tf.test.TestCase):

  def test_objective_matches_hand_computation(self):
    policy = _scalar_policy(0.5, 0.2, 0.3)
    self.assertAllClose(step_size.lqg_objective(policy, _scalar_model()),
                        _hand_objective(0.5, 0.2, 0.3), rtol=1e-12)
    self.assertAllClose(step_size.lqg_objective(policy, _scalar_model(nu=2.0)),
                        _hand_objective(0.5, 0.2, 0.3, nu=2.0), rtol=1e-12)
    self.assertAllClose(_hand_objective(0.5, 0.2, 0.3), 1.4675, rtol=1e-12)

  def test_predicted_and_actual(self):
    prev, cur = _scalar_policy(0.9, 0.5, 0.3), _scalar_policy(0.1, 0.1, 0.2)
    old, new = _scalar_model(nu=1.0), _scalar_model(cc=0.7, nu=1.0)  # new model: cost + 0.4
    predicted, actual = step_size.predicted_and_actual_improvement(prev, cur, old, new)
    hand = _hand_objective(0.9, 0.5, 0.3, nu=1.0) - _hand_objective(0.1, 0.1, 0.2, nu=1.0)
    self.assertAllClose(predicted, hand, rtol=1e-12)
    self.assertAllClose(actual, hand - 0.4, rtol=1e-12)
    self.assertGreater(hand, 0.4)
    # Same model both times: the actual improvement is the predicted one, so the step grows 5x.
    predicted, actual = step_size.predicted_and_actual_improvement(prev, cur, old, old)
    self.assertAllClose(actual, predicted, rtol=0.0, atol=0.0)
    self.assertAllClose(step_size.adjust_step_mult(predicted, actual, 1.0), 5.0)

  def test_rejects_half_specified_model(self):
    model = _scalar_model()._replace(nu=np.ones(1))
    with self.assertRaisesRegex(ValueError, "needs both pi_lin and nu or neither"):
      step_size.lqg_objective(_scalar_policy(0.1, 0.1, 0.2), model)


if __name__ == "__main__":
  tf.test.main()
