"""Numbers that would wreck a model are refused at every entry point, with the argument named.

Also: one huge finite gradient no longer turns the mlp rules' state NaN (shown
side by side with Keras's Adam), and `learning_rate=lambda iteration: ...`
works like the equivalent schedule.
"""

import doctest

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib
from keras_l2o import validation

NAN, INF = float("nan"), float("inf")

# (rule, config, the exact message). Each was accepted (or gave an error not
# naming the argument) before the validation layer.
BAD_RULE_CONFIGS = [
    ("adam", {"amsgrad": "False"},
     "Argument `amsgrad` must be a bool (True or False). Received: amsgrad='False'"),
    ("adam", {"epsilon": INF}, "Argument `epsilon` must be a finite number > 0. Received: "
     "epsilon=inf"),
    ("adam", {"beta_1": NAN}, "Argument `beta_1` must be a finite number in [0, 1). Received: "
     "beta_1=nan"),
    ("adam", {"beta_2": True}, "Argument `beta_2` must be a finite number in [0, 1). Received: "
     "beta_2=True"),
    ("rmsprop", {"centered": "yes"}, "Argument `centered` must be a bool (True or False). "
     "Received: centered='yes'"),
    ("rmsprop", {"epsilon": INF}, "Argument `epsilon` must be a finite number > 0. Received: "
     "epsilon=inf"),
    ("momentum", {"momentum": "0.5"}, "Argument `momentum` must be a finite number in [0, 1). "
     "Received: momentum='0.5'"),
    ("adagrad", {"initial_accumulator_value": INF}, "Argument `initial_accumulator_value` must "
     "be a finite number >= 0. Received: initial_accumulator_value=inf"),
    ("mlp", {"step_scale": NAN}, "Argument `step_scale` must be a finite number > 0. Received: "
     "step_scale=nan"),
    ("mlp", {"epsilon": INF}, "Argument `epsilon` must be a finite number > 0. Received: "
     "epsilon=inf"),
    ("mlp", {"hidden_size": True}, "Argument `hidden_size` must be an integer in [1, 1024]. "
     "Received: hidden_size=True"),
    ("mlp", {"hidden_size": 16.0}, "Argument `hidden_size` must be an integer in [1, 1024]. "
     "Received: hidden_size=16.0"),
    ("mlp", {"beta_slow": 1.0}, "Argument `beta_slow` must be a finite number in [0, 1). "
     "Received: beta_slow=1.0"),
    ("mlp_factored", {"epsilon_1": INF}, "Argument `epsilon_1` must be a finite number > 0. "
     "Received: epsilon_1=inf"),
    ("mlp_factored", {"step_scale": -1e-3}, "Argument `step_scale` must be a finite number > 0. "
     "Received: step_scale=-0.001"),
    ("lstm", {"output_scale": INF}, "Argument `output_scale` must be a finite number > 0. "
     "Received: output_scale=inf"),
    ("lstm", {"hidden_size": 100000}, "Argument `hidden_size` must be an integer in [1, 1024]. "
     "Received: hidden_size=100000"),
    ("lstm", {"num_layers": "2"}, "Argument `num_layers` must be an integer in [0, 8]. "
     "Received: num_layers='2'"),
    ("lstm", {"preprocess_constant": NAN}, "Argument `preprocess_constant` must be a finite "
     "number > 0. Received: preprocess_constant=nan"),
    ("lstm", {"preprocessing": ["log_sign"]}, "Argument `preprocessing` must be one of "
     "['log_sign', 'log_sign_clamped', 'none']. Received: preprocessing=['log_sign'] "
     "(of type list)"),
    ("gps_lstm", {"output_scale": INF}, "Argument `output_scale` must be a finite number > 0. "
     "Received: output_scale=inf"),
    ("gps_policy", {"init_step": INF}, "Argument `init_step` must be a finite number >= 0. "
     "Received: init_step=inf"),
    ("gps_policy", {"dimension": 1000, "history": 1000, "hidden_units": (2000,)},
     "Rule 'gps_policy' would have 4006000000 meta-parameters, more than the 100000000 "
     "keras_l2o allows: reduce its sizes."),
]


class RuleConfigTest(tf.test.TestCase):

  def test_bad_configs_name_the_argument_and_show_the_value(self):
    for name, config, message in BAD_RULE_CONFIGS:
      with self.subTest(rule=name, config=config):
        with self.assertRaises(ValueError) as ctx:
          keras_l2o.rules.get(name, **config)
        self.assertEqual(str(ctx.exception), message)

  def test_numpy_numbers_are_accepted_as_plain_python_numbers(self):
    rule = keras_l2o.rules.get("mlp", hidden_size=np.int64(8), beta_1=np.float32(0.5))
    self.assertEqual(rule.get_config()["hidden_size"], 8)
    self.assertIs(type(rule.get_config()["hidden_size"]), int)
    self.assertEqual(rule.get_config()["beta_1"], 0.5)
    self.assertIs(keras_l2o.rules.get("adam", amsgrad=np.bool_(True)).amsgrad, True)


class LearnedOptimizerArgumentsTest(tf.test.TestCase):

  def test_bad_learning_rates_are_refused(self):
    for value in (NAN, INF, -INF, -0.1):
      with self.subTest(learning_rate=value):
        with self.assertRaises(ValueError) as ctx:
          keras_l2o.LearnedOptimizer("adam", learning_rate=value)
        self.assertEqual(str(ctx.exception), "Argument `learning_rate` must be a finite number "
                         f">= 0. Received: learning_rate={value!r}")
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.LearnedOptimizer("adam", learning_rate="0.1")
    self.assertEqual(str(ctx.exception), "Argument `learning_rate` must be a finite number >= 0, "
                     "a keras.optimizers.schedules.LearningRateSchedule or a callable. Received: "
                     "learning_rate='0.1'")

  def test_good_learning_rates_are_accepted(self):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    for value in (0.0, 1, np.float32(0.5), schedule, lambda: 0.1, lambda iteration: 0.1):
      keras_l2o.LearnedOptimizer("sgd", learning_rate=value)

  def test_seed_must_be_an_integer(self):
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.LearnedOptimizer("mlp", seed=1.5)
    self.assertEqual(str(ctx.exception), "Argument `seed` must be an integer. Received: seed=1.5")

  def test_bad_meta_params_are_refused_naming_the_tensor(self):
    rule = keras_l2o.rules.get("mlp")
    cases = [(NAN, "meta_params['skip'] must be finite; entry (1, 0) is nan."),
             (INF, "meta_params['skip'] must be finite; entry (1, 0) is inf."),
             (1e38, "meta_params['skip'] has entry (1, 0) = 1e+38, larger in magnitude than "
              "1e+06: not a usable meta-parameter.")]
    for value, message in cases:
      params = meta_params_lib.to_numpy(rule.init_meta_params(0))
      params["skip"] = params["skip"].astype(np.float64)
      params["skip"][1, 0] = value
      with self.subTest(value=value):
        with self.assertRaises(ValueError) as ctx:
          keras_l2o.LearnedOptimizer(rule, meta_params=params)
        self.assertEqual(str(ctx.exception), message)
        optimizer = keras_l2o.LearnedOptimizer(rule)
        before = optimizer.meta_params["skip"].numpy().copy()
        with self.assertRaises(ValueError) as ctx:
          optimizer.set_meta_params(params)
        self.assertEqual(str(ctx.exception), message)
        self.assertAllEqual(optimizer.meta_params["skip"].numpy(), before)  # nothing assigned

  def test_meta_params_of_the_wrong_shape_or_type_name_the_tensor(self):
    optimizer = keras_l2o.LearnedOptimizer("mlp")
    params = meta_params_lib.to_numpy(optimizer.meta_params)
    with self.assertRaisesRegex(ValueError, r"^meta_params\['hidden'\]\['bias'\] has shape \(3,\); "
                                r"rule 'mlp' expects shape \(16,\)\.$"):
      optimizer.set_meta_params({**params, "hidden": {**params["hidden"], "bias": np.zeros(3)}})
    with self.assertRaisesRegex(ValueError, r"^meta_params\['output'\]\['bias'\] must be numeric\. "
                                r"Received dtype <U1\.$"):
      optimizer.set_meta_params({**params, "output": {**params["output"],
                                                      "bias": np.array(["a"])}})


class CallableLearningRateTest(tf.test.TestCase):

  def _weights(self, learning_rate, rule="momentum"):
    keras.utils.set_random_seed(0)
    var = keras.Variable(np.linspace(-1.0, 1.0, 6).astype(np.float32))
    optimizer = keras_l2o.LearnedOptimizer(rule, learning_rate=learning_rate)
    for i in range(5):
      optimizer.apply([tf.constant(np.cos(np.arange(6.0) + i), tf.float32)], [var])
    return var.numpy()

  def test_callable_of_the_iteration_equals_the_schedule(self):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5)
    expected = self._weights(schedule)
    self.assertAllEqual(self._weights(lambda iteration: schedule(iteration)), expected)
    self.assertNotAllClose(self._weights(0.1), expected)  # the schedule does matter

  def test_callable_of_no_argument_is_keras_convention(self):
    self.assertAllEqual(self._weights(lambda: 0.1), self._weights(0.1))

  def test_callable_of_the_iteration_in_model_fit(self):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras_l2o.LearnedOptimizer("sgd", learning_rate=lambda it: 0.1 / (
        1.0 + tf.cast(it, tf.float32))), loss="mse")
    history = model.fit(np.ones((8, 3)), np.ones((8, 1)), batch_size=4, epochs=2, verbose=0)
    self.assertTrue(np.all(np.isfinite(history.history["loss"])))
    self.assertEqual(int(model.optimizer.iterations), 4)


def _run(optimizer, gradients):
  """Applies `gradients` (a list of [2, 2] arrays) to a zero [2, 2] variable; returns each value."""
  var = keras.Variable(np.zeros((2, 2), np.float32))
  values = []
  for gradient in gradients:
    optimizer.apply([tf.constant(gradient, tf.float32)], [var])
    values.append(var.numpy().copy())
  return np.array(values)


class HugeGradientTest(tf.test.TestCase):
  """One finite gradient of 2e19 (its square overflows float32), then ordinary ones."""

  GRADIENTS = [[[2e19, 1.0], [1.0, 1.0]]] + [[[1.0, 1.0], [1.0, 1.0]]] * 4

  def test_side_by_side_with_keras_adam(self):
    keras_adam = _run(keras.optimizers.Adam(1e-3), self.GRADIENTS)
    rule_adam = _run(keras_l2o.LearnedOptimizer("adam", learning_rate=1e-3), self.GRADIENTS)
    # Keras: v = inf after the huge gradient, the step is 0; one step later
    # v = inf + (1 - inf) * 0.001 = NaN and the weight is NaN for good.
    self.assertEqual(keras_adam[0, 0, 0], 0.0)
    self.assertTrue(np.all(np.isnan(keras_adam[1:, 0, 0])))
    # The rule: g^2 clipped to a quarter of float32's max, so v is huge but
    # finite: a first step of -2.17 lr (Adam's first step is about lr * sign),
    # then it recovers.
    self.assertAllClose(rule_adam[0, 0, 0], -2.17e-3, rtol=1e-2)
    self.assertTrue(np.all(np.isfinite(rule_adam)))
    self.assertTrue(np.all(np.diff(rule_adam[:, 0, 0]) < 0))  # still moving against +g
    # Every other coordinate: the rule equals Keras to the bit.
    self.assertAllEqual(rule_adam[:, 0, 1], keras_adam[:, 0, 1])
    self.assertAllEqual(rule_adam[:, 1, :], keras_adam[:, 1, :])

  def test_mlp_rules_and_the_default_pretrained_optimizer_stay_finite(self):
    for name, optimizer in [("mlp", keras_l2o.LearnedOptimizer("mlp")),
                            ("mlp_factored", keras_l2o.LearnedOptimizer("mlp_factored")),
                            ("l2o-mlp-general", keras_l2o.pretrained.get("l2o-mlp-general")),
                            ("l2o-mlp-factored", keras_l2o.pretrained.get("l2o-mlp-factored"))]:
      with self.subTest(optimizer=name):
        values = _run(optimizer, self.GRADIENTS)
        self.assertTrue(np.all(np.isfinite(values)), values)
        for state in optimizer._state_variables[0]:  # pylint: disable=protected-access
          self.assertTrue(np.all(np.isfinite(state.numpy())))
        # The huge coordinate keeps moving after the huge step (its state is not stuck).
        self.assertNotEqual(values[-1, 0, 0], values[1, 0, 0])

  def test_mlp_rule_matches_its_old_numbers_without_overflow(self):
    # The safe forms are bit-identical to the old formula wherever that is finite.
    rng = np.random.default_rng(0)
    rule = keras_l2o.rules.get("mlp")
    grad = tf.constant(rng.normal(size=[50]) * 10.0 ** rng.integers(-8, 8, size=[50]), tf.float32)
    state = rule.init_state(grad)
    new_state = rule.features(grad, state, 1)[1]
    beta_1, beta_2 = rule.betas["beta_1"], rule.betas["beta_2"]
    self.assertAllEqual(new_state.momentum, state.momentum + (grad - state.momentum) * tf.constant(
        1.0 - beta_1, tf.float32))
    self.assertAllEqual(new_state.velocity, state.velocity + (tf.square(grad) - state.velocity)
                        * tf.constant(1.0 - beta_2, tf.float32))

  def test_validation_module_examples_run(self):
    results = doctest.testmod(validation)
    self.assertEqual((results.failed, results.attempted), (0, 3))

  def test_validation_helpers_return_plain_types(self):
    self.assertIs(type(validation.check_number("x", np.float32(0.5))), float)
    self.assertIs(type(validation.check_int("x", np.int32(3))), int)
    self.assertIs(validation.check_bool("x", np.bool_(False)), False)


if __name__ == "__main__":
  tf.test.main()
