"""Hand-designed rules through the shared rule test base, plus their by-hand steps."""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step as step_lib
from tests.rules import rule_test_base

_X0 = [1.0, -2.0]
_G = [0.5, 0.25]


class SGDTest(rule_test_base.RuleTestBase):
  RULE_NAME = "sgd"
  # x - lr g = [1 - 0.05, -2 - 0.025]
  HAND_STEP = (_X0, _G, 0.1, [0.95, -2.025])


class MomentumTest(rule_test_base.RuleTestBase):
  RULE_NAME = "momentum"
  CONFIG = {"momentum": 0.9}
  # First step from zero velocity: m = -g, so it equals SGD.
  HAND_STEP = (_X0, _G, 0.1, [0.95, -2.025])

  def test_second_step_by_hand(self):
    # m1 = -0.5; m2 = 0.9 * -0.5 - 0.5 = -0.95; x2 = 0.95 + 0.1 * -0.95 = 0.855.
    x = tf.constant([1.0])
    state = self.rule.init_state(x)
    for t in (1, 2):
      x, state = step_lib.functional_step(self.rule, {}, tf.constant([0.5]), x, state, t, 0.1)
    self.assertAllClose([0.855], x, rtol=1e-6)


class NAGTest(rule_test_base.RuleTestBase):
  RULE_NAME = "nag"
  CONFIG = {"momentum": 0.9}
  # m = -g; update = 0.9 m - g = -1.9 g: [1 - 0.095, -2 - 0.0475].
  HAND_STEP = (_X0, _G, 0.1, [0.905, -2.0475])


class RMSpropTest(rule_test_base.RuleTestBase):
  RULE_NAME = "rmsprop"
  # v = 0.1 g^2; x - 0.1 g / sqrt(v + 1e-7).
  HAND_STEP = (_X0, _G, 0.1, [0.6837728664, -2.3162252362])


class RMSpropCenteredMomentumTest(rule_test_base.RuleTestBase):
  RULE_NAME = "rmsprop"
  CONFIG = {"rho": 0.8, "epsilon": 1e-6, "momentum": 0.5, "centered": True}


class AdamTest(rule_test_base.RuleTestBase):
  RULE_NAME = "adam"
  # m = 0.1 g, v = 0.001 g^2, alpha = sqrt(0.001) / 0.1:
  # x - 0.1 (m alpha) / (sqrt(v) + 1e-7).
  HAND_STEP = (_X0, _G, 0.1, [0.9000006325, -2.0999987351])


class AMSGradTest(rule_test_base.RuleTestBase):
  RULE_NAME = "adam"
  CONFIG = {"amsgrad": True, "beta_2": 0.9}


class HandDesignedConfigErrorsTest(tf.test.TestCase):

  def test_out_of_range_arguments_are_refused_with_the_value(self):
    with self.assertRaisesRegex(ValueError, r"Argument `momentum` must be a finite number in "
                                r"\[0, 1\)\. Received: momentum=1\.5"):
      keras_l2o.rules.get("momentum", momentum=1.5)
    with self.assertRaisesRegex(ValueError, r"Received: beta_2=-0\.1"):
      keras_l2o.rules.get("adam", beta_2=-0.1)
    with self.assertRaisesRegex(ValueError, r"Received: epsilon=0"):
      keras_l2o.rules.get("rmsprop", epsilon=0)

  def test_state_sizes(self):
    sizes = {n: keras_l2o.rules.get(n).state_floats_per_parameter()
             for n in keras_l2o.rules.HAND_DESIGNED}
    self.assertEqual(sizes, {"sgd": 0, "momentum": 1, "nag": 1, "rmsprop": 1, "adam": 2,
                             "adagrad": 1})
    self.assertEqual(keras_l2o.rules.get("adam", amsgrad=True).state_floats_per_parameter(), 3)
    self.assertEqual(
        keras_l2o.rules.get("rmsprop", momentum=0.9, centered=True).state_floats_per_parameter(),
        3)


if __name__ == "__main__":
  tf.test.main()
