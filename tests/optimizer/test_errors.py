"""Bad input gives clear errors, mostly at construction; asserted to the text."""


import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib

_VALID = ("adagrad, adam, general, gps_general, gps_lstm, gps_policy, learned_lr, lstm, mlp, "
          "mlp_factored, momentum, nag, rmsprop, sgd")


class ErrorsTest(tf.test.TestCase):

  def test_unknown_rule_lists_the_valid_ones(self):
    message = f"Unknown rule 'adamw'. Valid rules: {_VALID}."
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.rules.get("adamw")
    self.assertEqual(str(ctx.exception), message)
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.LearnedOptimizer("adamw")
    self.assertEqual(str(ctx.exception), message)

  def test_unknown_rule_config(self):
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.rules.get("adam", beta1=0.9)
    self.assertEqual(str(ctx.exception),
                     "Rule 'adam' got unexpected config ['beta1']. "
                     "Allowed: ['beta_1', 'beta_2', 'epsilon', 'amsgrad'].")
    with self.assertRaisesRegex(ValueError, r"Rule 'sgd' got unexpected config \['momentum'\]\. "
                                r"Allowed: none\."):
      keras_l2o.rules.get("sgd", momentum=0.9)

  def test_meta_params_of_the_wrong_shape_name_the_entry(self):
    rule = keras_l2o.rules.get("lstm")
    params = meta_params_lib.to_numpy(rule.init_meta_params(0))
    params["layer1"]["kernel"] = np.zeros((3, 80))
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.LearnedOptimizer(rule, meta_params=params)
    self.assertEqual(str(ctx.exception), "meta_params['layer1']['kernel'] has shape (3, 80); "
                     "rule 'lstm' expects shape (22, 80).")

  def test_meta_params_of_the_wrong_structure_name_the_entry(self):
    rule = keras_l2o.rules.get("mlp")
    params = meta_params_lib.to_numpy(rule.init_meta_params(0))
    del params["output"]["bias"]
    with self.assertRaisesRegex(ValueError, r"^meta_params\['output'\]\['bias'\] is missing; "
                                r"rule 'mlp' expects entries \["):
      keras_l2o.LearnedOptimizer(rule, meta_params=params)
    params = meta_params_lib.to_numpy(rule.init_meta_params(0))
    params["extra"] = np.zeros(3)
    with self.assertRaisesRegex(ValueError, r"^meta_params\['extra'\] is not a meta-parameter "
                                r"of rule 'mlp'"):
      keras_l2o.LearnedOptimizer(rule, meta_params=params)
    with self.assertRaisesRegex(ValueError, r"^meta_params\['w'\] is not a meta-parameter of "
                                r"rule 'adam'; it expects entries \[\]\."):
      keras_l2o.LearnedOptimizer("adam", meta_params={"w": np.zeros(2)})
    with self.assertRaisesRegex(ValueError, r"meta_params must be a nested dict for rule 'mlp'\. "
                                r"Received: list\."):
      keras_l2o.LearnedOptimizer("mlp", meta_params=[1.0])

  def test_set_meta_params_validates_too(self):
    optimizer = keras_l2o.LearnedOptimizer("mlp")
    with self.assertRaisesRegex(ValueError, r"meta_params\['skip'\] has shape \(2, 1\)"):
      optimizer.set_meta_params({**optimizer.meta_params, "skip": np.zeros((2, 1))})

  def test_non_float_variable_is_refused_at_build(self):
    optimizer = keras_l2o.LearnedOptimizer("adam")
    with self.assertRaises(ValueError) as ctx:
      optimizer.build([tf.Variable(tf.zeros([2])), tf.Variable([1, 2], name="counts")])
    self.assertIn("LearnedOptimizer updates floating-point variables only; variable", str(
        ctx.exception))
    self.assertIn("has dtype int32", str(ctx.exception))

  def test_nonfinite_mode_is_validated(self):
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.LearnedOptimizer("sgd", nonfinite="ignore")
    self.assertEqual(str(ctx.exception), "Argument `nonfinite` must be one of ['skip', 'zero', "
                     "'raise']. Received: nonfinite='ignore'")

  def test_keras_argument_errors_pass_through(self):
    with self.assertRaisesRegex(ValueError, "Only one of `clipnorm`, `clipvalue` and "
                                "`global_clipnorm` can be set"):
      keras_l2o.LearnedOptimizer("sgd", clipnorm=1.0, clipvalue=1.0)
    with self.assertRaisesRegex(ValueError, r"Argument\(s\) not recognized"):
      keras_l2o.LearnedOptimizer("sgd", momentum=0.9)


if __name__ == "__main__":
  tf.test.main()
