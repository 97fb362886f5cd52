"""The lstm and mlp rules through the shared rule test base, plus their specifics."""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step as step_lib
from keras_l2o.rules import features
from tests.rules import rule_test_base


class LSTMPaperTest(rule_test_base.RuleTestBase):
  RULE_NAME = "lstm"
  LEARNING_RATE = 1.0


class LSTMDMCodeTest(rule_test_base.RuleTestBase):
  RULE_NAME = "lstm"
  CONFIG = {"preset": "dm_code"}
  LEARNING_RATE = 1.0


class LSTMRawGradientTest(rule_test_base.RuleTestBase):
  RULE_NAME = "lstm"
  CONFIG = {"preprocessing": "none", "output_scale": 1.0, "hidden_size": 5, "num_layers": 1,
            "init": "random"}
  LEARNING_RATE = 1.0


class LSTMNoLayersTest(rule_test_base.RuleTestBase):
  """The public code's test configuration: a linear layer on the raw gradient."""
  RULE_NAME = "lstm"
  CONFIG = {"preprocessing": "none", "output_scale": 1.0, "num_layers": 0, "init": "zeros"}
  LEARNING_RATE = 1.0
  # All weights zero: the rule does nothing.
  HAND_STEP = ([1.0, -2.0], [0.5, 0.25], 1.0, [1.0, -2.0])


class MLPTest(rule_test_base.RuleTestBase):
  RULE_NAME = "mlp"
  LEARNING_RATE = 10.0
  # At initialisation the mlp rule is Adam with step 1e-3 and epsilon 1e-8 after bias
  # correction: step 1 moves by -1e-3 g / (|g| + 1e-8).
  HAND_STEP = ([1.0, -2.0], [0.5, 0.25], 1.0, [0.99900000002, -2.00099999996])


class LSTMSpecificsTest(tf.test.TestCase):

  def test_presets(self):
    paper = keras_l2o.rules.get("lstm").get_config()
    dm = keras_l2o.rules.get("lstm", preset="dm_code").get_config()
    self.assertEqual((paper["preprocessing"], paper["preprocess_constant"], paper["output_scale"]),
                     ("log_sign", 10.0, 0.1))
    self.assertEqual((dm["preprocessing"], dm["preprocess_constant"], dm["output_scale"]),
                     ("log_sign_clamped", 5.0, 0.01))
    self.assertEqual(keras_l2o.rules.get("lstm").state_floats_per_parameter(), 80)

  def test_paper_preprocessing_by_hand(self):
    # |g| >= e^-10: (log|g| / 10, sign g); below: (-1, e^10 g).
    out = features.log_and_sign_paper(tf.constant([np.e, -1.0, 1e-5, 0.0]), 10.0).numpy()
    self.assertAllClose(out, [[0.1, 1.0], [0.0, -1.0], [-1.0, np.exp(10) * 1e-5], [-1.0, 0.0]],
                        rtol=1e-6)

  def test_clamped_preprocessing_by_hand(self):
    out = features.log_and_sign_clamped(tf.constant([np.exp(2.5), 1e-9]), 5.0).numpy()
    self.assertAllClose(out, [[0.5, 1.0], [-1.0, 1e-9 * np.exp(5)]], rtol=1e-5)

  def test_sign_momentum_init_steps_against_the_gradient(self):
    rule = keras_l2o.rules.get("lstm")
    meta = rule.init_meta_params(0)
    grad = tf.constant([0.3, -0.02, 5.0, -1e-3])
    var = tf.zeros([4])
    state = rule.init_state(var)
    for t in range(1, 30):
      update, state = rule.apply(meta, grad, var, state, t)
    # Steady state: about init_step (0.01) against the sign of the gradient.
    self.assertAllClose(update, -0.01 * np.sign(grad.numpy()), atol=3e-3)

  def test_unknown_preset_and_preprocessing_are_refused(self):
    with self.assertRaisesRegex(ValueError, r"Unknown lstm preset 'nope'\. Valid presets: "
                                r"\['dm_code', 'paper'\]\."):
      keras_l2o.rules.get("lstm", preset="nope")
    with self.assertRaisesRegex(ValueError, r"Received: preprocessing='x'"):
      keras_l2o.rules.get("lstm", preprocessing="x")


class MLPSpecificsTest(tf.test.TestCase):

  def test_initial_mlp_rule_equals_adam_like_step(self):
    """Before meta-training, mlp = -1e-3 m_hat / (sqrt(v_hat) + 1e-8) at every step."""
    rule = keras_l2o.rules.get("mlp")
    meta = rule.init_meta_params(0)
    rng = np.random.default_rng(0)
    x = tf.zeros([10])
    state = rule.init_state(x)
    m = v = np.zeros(10)
    for t in range(1, 8):
      g = rng.normal(size=10)
      update, state = rule.apply(meta, tf.constant(g, tf.float32), x, state, t)
      m = 0.9 * m + 0.1 * g
      v = 0.999 * v + 0.001 * g * g
      expected = -1e-3 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
      self.assertAllClose(expected, update, rtol=1e-5)

  def test_state_is_at_most_four_floats(self):
    self.assertLessEqual(keras_l2o.rules.get("mlp").state_floats_per_parameter(), 4)


if __name__ == "__main__":
  tf.test.main()
