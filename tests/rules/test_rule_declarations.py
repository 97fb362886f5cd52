"""What every rule declares once: configuration, state type, meta-parameter shapes."""

import json

from absl.testing import parameterized
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib
from keras_l2o.rules import base

# A few configurations of every registered rule (the first is the default).
CONFIGS = {
    "sgd": [{}],
    "momentum": [{}, {"momentum": 0.5}],
    "nag": [{}, {"momentum": 0.3}],
    "rmsprop": [{}, {"momentum": 0.5, "centered": True}],
    "adam": [{}, {"amsgrad": True}],
    "adagrad": [{}, {"initial_accumulator_value": 0}],
    "lstm": [{}, {"preset": "dm_code"}, {"num_layers": 0},
             {"num_layers": 1, "hidden_size": 5, "init": "zeros"},
             {"num_layers": 3, "hidden_size": 7, "preprocessing": "none", "init": "random"}],
    "mlp": [{}, {"hidden_size": 4, "beta_1": 0.5}],
    "mlp_factored": [{}, {"hidden_size": 3, "min_dim_to_factor": 4}],
    "gps_policy": [{}, {"dimension": 3, "history": 2, "hidden_units": [6, 8],
                        "activation": "softplus"}, {"hidden_units": []}],
    "gps_lstm": [{}, {"hidden_size": 4}],
    "general": [{}, {"hidden_sizes": [4], "orthogonalize": False, "num_training_steps": 100},
                {"orthogonalize_max_dim": 16}],
    "gps_general": [{}, {"hidden_sizes": []}, {"hidden_sizes": (3, 5)}, {"anneal": 1.0}],
    "learned_lr": [{}, {"momentum": 0.9, "initial_learning_rate": 0.5}],
}
CASES = [(f"{name}_{i}", name, config) for name, configs in sorted(CONFIGS.items())
         for i, config in enumerate(configs)]

# Rule entries as saved by earlier runs (docs/results/*/config.json, keras_l2o/pretrained/*.json):
# they must rebuild a rule whose configuration is exactly the saved one.
SAVED = [
    {"name": "general", "config": {"hidden_sizes": [8, 8], "ns_steps": 5,
                                   "num_training_steps": None, "orthogonalize": True,
                                   "step_scale": 0.001, "vector_scale": 1.0}},
    {"name": "gps_lstm", "config": {"hidden_size": 16, "init_scale": 0.1, "init_step": 0.1,
                                    "output_scale": 0.01}},
    {"name": "gps_policy", "config": {"activation": "relu", "dimension": 4, "hidden_units": [50],
                                      "history": 25, "init_step": 0.1, "init_variance": 0.01}},
    {"name": "lstm", "config": {"hidden_size": 20, "init": "sign_momentum", "init_step": 0.01,
                                "num_layers": 2, "output_scale": 0.1, "preprocess_constant": 10.0,
                                "preprocessing": "log_sign", "preset": "paper"}},
    {"name": "mlp_factored", "config": {"beta_1": 0.9, "beta_2": 0.999, "beta_slow": 0.99,
                                        "epsilon": 1e-08, "epsilon_1": 1e-30, "hidden_size": 16,
                                        "min_dim_to_factor": 1, "step_scale": 0.001}},
    {"name": "mlp", "config": {"beta_1": 0.9, "beta_2": 0.999, "beta_slow": 0.99,
                               "epsilon": 1e-08, "hidden_size": 16, "step_scale": 0.001}},
]
# State fields that are not shaped like a vector variable: unused [1] placeholders.
PLACEHOLDER_FIELDS = {("mlp_factored", "velocity_cols"), ("general", "rows"), ("general", "cols")}


def _keys_in_order(tree, prefix=""):
  """Every key of a nested dict, depth first, in insertion order."""
  keys = []
  for key, value in tree.items():
    keys.append(prefix + key)
    if isinstance(value, dict):
      keys += _keys_in_order(value, prefix + key + "/")
  return keys


class RuleDeclarationTest(parameterized.TestCase, tf.test.TestCase):

  def test_every_registered_rule_is_covered(self):
    self.assertEqual(sorted(CONFIGS), keras_l2o.rules.names())

  @parameterized.named_parameters(*CASES)
  def test_declared_shapes_are_those_of_the_initial_meta_params(self, name, config):
    rule = keras_l2o.rules.get(name, **config)
    declared = rule.meta_param_shapes()
    for seed in (0, 7):
      initial = rule.init_meta_params(seed)
      self.assertEqual(meta_params_lib.flatten_with_paths(declared),
                       [(path, tuple(t.shape)) for path, t in
                        meta_params_lib.flatten_with_paths(initial)])
      self.assertEqual(_keys_in_order(declared), _keys_in_order(initial))
    self.assertEqual(rule.is_learned, bool(declared))
    for _, shape in meta_params_lib.flatten_with_paths(declared):
      self.assertIsInstance(shape, tuple)
      self.assertTrue(all(isinstance(d, int) for d in shape), shape)

  def test_shapes_and_validation_do_not_run_the_initialisation(self):
    rule = keras_l2o.rules.get("lstm")
    initial = rule.init_meta_params(3)
    rule.init_meta_params = None  # calling it now would fail
    self.assertTrue(rule.is_learned)
    self.assertEqual(rule.meta_param_shapes()["layer1"]["kernel"], (22, 80))
    optimizer = keras_l2o.LearnedOptimizer(rule, initial)
    self.assertAllEqual(optimizer.meta_params["output"]["kernel"], initial["output"]["kernel"])

  @parameterized.named_parameters(*CASES)
  def test_configuration_is_the_attributes_and_round_trips_through_json(self, name, config):
    rule = keras_l2o.rules.get(name, **config)
    saved = rule.get_config()
    self.assertEqual(list(saved), [k for k in rule.config_names()
                                   if getattr(rule, k) is not None
                                   or k not in rule.omitted_when_none])
    for key, value in saved.items():
      self.assertEqual(value, getattr(rule, key), msg=key)
    for key in config:
      self.assertIn(key, saved)
    text = json.dumps(keras_l2o.rules.serialize(rule))
    again = keras_l2o.rules.deserialize(json.loads(text))
    self.assertEqual(again, rule)
    self.assertEqual(hash(again), hash(rule))
    self.assertEqual(json.dumps(keras_l2o.rules.serialize(again)), text)
    self.assertEqual(type(rule).from_config(saved), rule)

  def test_saved_rule_entries_rebuild_the_same_configuration(self):
    cards = [keras_l2o.pretrained.card(n)["rule"] for n in keras_l2o.pretrained.names()]
    for entry in SAVED + cards:
      rule = keras_l2o.rules.deserialize(entry)
      self.assertEqual(json.dumps(keras_l2o.rules.serialize(rule), sort_keys=True),
                       json.dumps(entry, sort_keys=True))

  def test_an_option_added_later_is_saved_only_when_set(self):
    self.assertNotIn("orthogonalize_max_dim", keras_l2o.rules.get("general").get_config())
    self.assertEqual(keras_l2o.rules.get("general", orthogonalize_max_dim=4).get_config()[
        "orthogonalize_max_dim"], 4)

  @parameterized.named_parameters(*CASES)
  def test_state_is_the_declared_type(self, name, config):
    rule = keras_l2o.rules.get(name, **config)
    n = rule.dimension if name == "gps_policy" else 5
    state = rule.init_state(tf.zeros([n]))
    self.assertIs(type(state), rule.state_type)
    self.assertEqual(rule.state_fields, state._fields)
    self.assertEqual(rule.trailing_state_dims(), rule.state_type.extra_dims)
    for field, extra, value in zip(state._fields, rule.trailing_state_dims(), state):
      if (name, field) in PLACEHOLDER_FIELDS:
        self.assertEqual(value.shape, [1], msg=field)
      else:
        self.assertEqual(value.shape, [n, extra] if extra else [n], msg=field)

  def test_declare_state_gives_one_class_per_declaration(self):
    a = base.declare_state("TestState", m=None, h=3)
    self.assertIs(base.declare_state("TestState", m=None, h=3), a)
    self.assertIsNot(base.declare_state("TestState", m=None, h=4), a)
    self.assertEqual((a._fields, a.extra_dims), (("m", "h"), (None, 3)))
    self.assertEqual(keras_l2o.rules.get("lstm", num_layers=1, hidden_size=3).state_type._fields,
                     ("h1", "c1"))

  def test_a_rule_with_meta_params_must_declare_their_shapes(self):
    with self.assertRaisesRegex(TypeError, "Rule class Undeclared defines init_meta_params but "
                                "not meta_param_shapes: declare the shapes from the "
                                "configuration."):

      class Undeclared(keras_l2o.rules.SGD):  # pylint: disable=unused-variable

        def init_meta_params(self, seed):
          return {"w": tf.zeros([2])}

  def test_a_rule_passing_its_settings_up_is_told_the_protocol(self):

    class OldStyle(base.Rule):
      name = "old_style"

      def __init__(self, *, rate=0.1):
        super().__init__(rate=rate)

      def init_state(self, var):
        return base.EmptyState()

      def apply(self, meta_params, grad, var, state, step):
        return -grad, state

    with self.assertRaisesRegex(TypeError, r"Rule.__init__ takes no configuration: OldStyle "
                                r"should keep each keyword-only argument as the attribute of the "
                                r"same name instead. Received: \['rate'\]"):
      OldStyle(rate=0.2)


if __name__ == "__main__":
  tf.test.main()
