"""Property-based checks (hypothesis) of the entry points that take numbers and files.

Each property: whatever the input, the entry point either accepts it and then
behaves (finite configs, finite steps) or raises ValueError; never another
exception, never a silent NaN. The example budgets are fixed and the search is
derandomized, so the file runs the same cases every time, in well under a minute.
"""

import json
import os
import shutil
import types

from hypothesis import event
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import export as export_lib

# Anything a user or a config file might pass for a number.
ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    st.integers(min_value=-10, max_value=10**7),
    st.booleans(), st.none(), st.text(max_size=5),
    st.sampled_from(["False", "True", "1e-3", [0.9], (1,), {"a": 1}]))

CONFIG_NAMES = {name: keras_l2o.rules.get(name).config_names()
                for name in ("sgd", "momentum", "nag", "rmsprop", "adam", "adagrad", "mlp",
                             "mlp_factored", "lstm", "gps_lstm")}
QUICK = settings(max_examples=60, deadline=None, derandomize=True, database=None)
SLOW = settings(max_examples=20, deadline=None, derandomize=True, database=None)


@st.composite
def rule_configs(draw):
  name = draw(st.sampled_from(sorted(CONFIG_NAMES)))
  keys = draw(st.lists(st.sampled_from(CONFIG_NAMES[name]), unique=True, max_size=3)
              if CONFIG_NAMES[name] else st.just([]))
  return name, {key: draw(ANY_VALUE) for key in keys}


def _finite_config(config):
  """Whether every number in a rule config is finite (recursively)."""
  return all(_finite_config(v) if isinstance(v, (list, tuple)) else
             (not isinstance(v, float) or np.isfinite(v)) for v in (
                 config.values() if isinstance(config, dict) else config))


class RuleConfigPropertyTest(tf.test.TestCase):

  @QUICK
  @given(rule_configs())
  def test_rules_get_accepts_finite_json_configs_or_raises_value_error(self, case):
    name, config = case
    try:
      rule = keras_l2o.rules.get(name, **config)
    except ValueError as e:
      event("refused with ValueError")
      bad = [k for k in config if f"`{k}`" in str(e) or k in str(e)]
      self.assertTrue(bad or "Unknown" in str(e), msg=f"{name} {config}: {e}")
      return
    event("accepted")
    self.assertTrue(_finite_config(rule.get_config()), rule.get_config())
    self.assertEqual(json.loads(json.dumps(rule.get_config())), rule.get_config())
    self.assertEqual(keras_l2o.rules.get(name, **rule.get_config()), rule)

  @SLOW
  @given(rule_configs(), st.floats(min_value=-1e30, max_value=1e30))
  def test_an_accepted_rule_takes_finite_steps_on_finite_gradients(self, case, scale):
    name, config = case
    try:
      rule = keras_l2o.rules.get(name, **config)
    except ValueError:
      event("config refused")
      return
    event("config accepted: stepped")
    grad = tf.constant(np.array([[scale, -1.0], [0.5, 0.0]]), tf.float32)
    state = rule.init_state(grad)
    meta = rule.init_meta_params(0)
    var = tf.zeros_like(grad)
    for step in (1, 2):
      kwargs = {"loss": tf.constant(1.0)} if rule.uses_loss else {}
      update, state = rule.apply(meta, grad, var, state, step, **kwargs)
      self.assertTrue(np.all(np.isfinite(update.numpy())), msg=f"{name} {config} {scale}")


class LearnedOptimizerPropertyTest(tf.test.TestCase):

  @QUICK
  @given(ANY_VALUE, st.sampled_from(["skip", "zero", "raise", "ignore", None, 1]), ANY_VALUE)
  def test_arguments_are_accepted_or_refused_with_value_error(self, learning_rate, nonfinite,
                                                              seed):
    try:
      optimizer = keras_l2o.LearnedOptimizer("sgd", learning_rate=learning_rate,
                                             nonfinite=nonfinite, seed=seed)
    except ValueError:
      event("refused with ValueError")
      return
    event("accepted")
    rate = float(optimizer.learning_rate)
    self.assertTrue(np.isfinite(rate) and rate >= 0.0, rate)
    var = keras.Variable(np.ones(2, np.float32))
    optimizer.apply([tf.constant([1.0, -1.0])], [var])
    self.assertTrue(np.all(np.isfinite(var.numpy())))

  @QUICK
  @given(st.lists(st.one_of(st.floats(width=32), st.sampled_from([1e38, -1e7, 3.0])),
                  min_size=3, max_size=3))
  def test_meta_params_are_accepted_finite_or_refused(self, skip):
    optimizer = keras_l2o.LearnedOptimizer("mlp")
    params = tf.nest.map_structure(lambda v: v.numpy(), optimizer.meta_params)
    params["skip"] = np.array(skip, np.float32).reshape(3, 1)
    try:
      optimizer.set_meta_params(params)
    except ValueError as e:
      event("refused with ValueError")
      self.assertIn("meta_params['skip']", str(e))
      return
    event("accepted")
    self.assertTrue(np.all(np.abs(optimizer.meta_params["skip"].numpy()) <= 1e6))


def _json_values():
  scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**9),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6))
  return st.recursive(scalars, lambda children: st.one_of(
      st.lists(children, max_size=3), st.dictionaries(st.text(max_size=6), children, max_size=3)),
                      max_leaves=8)


class LoadPropertyTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "properties")
    shutil.rmtree(cls.root, ignore_errors=True)
    cls.good = keras_l2o.LearnedOptimizer("mlp").export(os.path.join(cls.root, "good"))
    cls.loaded = tf.saved_model.load(cls.good)
    cls.metadata = json.loads(cls.loaded.keras_l2o_metadata.numpy().decode("utf-8"))
    cls.count = 0

  def _load_with_metadata(self, metadata):
    """`load_export`'s checks on a loaded export whose metadata is replaced."""
    fake = types.SimpleNamespace(
        keras_l2o_metadata=tf.constant(json.dumps(metadata) if not isinstance(metadata, bytes)
                                       else metadata),
        meta_param_variables=self.loaded.meta_param_variables)
    original = tf.saved_model.load
    tf.saved_model.load = lambda path: fake
    try:
      return export_lib.load_export(self.good)
    finally:
      tf.saved_model.load = original

  @QUICK
  @given(st.sampled_from(["format", "format_version", "rule", "optimizer_config",
                          "meta_param_paths", "optimizer_config/learning_rate",
                          "optimizer_config/rule", "optimizer_config/rule/config",
                          "optimizer_config/rule/config/hidden_size",
                          "optimizer_config/rule/config/epsilon",
                          "optimizer_config/clipnorm", "optimizer_config/name"]),
         _json_values())
  def test_crafted_metadata_loads_or_raises_value_error(self, key, value):
    metadata = json.loads(json.dumps(self.metadata))
    node, keys = metadata, key.split("/")
    for k in keys[:-1]:
      node = node[k]
    node[keys[-1]] = value
    try:
      optimizer = self._load_with_metadata(metadata)
    except ValueError:
      event("refused with ValueError")
      return
    event("loaded")
    self.assertIsInstance(optimizer, keras_l2o.LearnedOptimizer)
    self.assertTrue(np.isfinite(float(optimizer.learning_rate)))

  @QUICK
  @given(st.binary(max_size=40))
  def test_metadata_bytes_that_are_not_json_raise_value_error(self, raw):
    with self.assertRaises(ValueError):
      self._load_with_metadata(b"\xff" + raw)

  @SLOW
  @given(st.sampled_from(["saved_model.pb", "variables/variables.index",
                          "variables/variables.data-00000-of-00001"]),
         st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)),
                  min_size=1, max_size=8), st.booleans())
  def test_corrupted_files_load_or_raise_value_error(self, file_name, edits, truncate):
    type(self).count += 1
    path = os.path.join(self.root, f"corrupt_{self.count}")
    shutil.copytree(self.good, path)
    target = os.path.join(path, file_name)
    data = bytearray(open(target, "rb").read())
    for position, byte in edits:
      data[int(position * len(data))] = byte
    if truncate:
      data = data[:int(edits[0][0] * len(data))]
    with open(target, "wb") as f:
      f.write(bytes(data))
    try:
      optimizer = keras_l2o.load(path)
    except ValueError:
      event("refused with ValueError")
      return
    finally:
      shutil.rmtree(path, ignore_errors=True)
    event("loaded")
    for value in tf.nest.flatten(optimizer.meta_params):
      self.assertTrue(np.all(np.isfinite(value.numpy())))

  @QUICK
  @given(st.text(max_size=20), st.sampled_from(["final", "best", "last", "latest", None]))
  def test_arbitrary_paths_raise_value_error(self, path, which):
    with self.assertRaises(ValueError):
      keras_l2o.load(os.path.join(self.root, "missing", path), which=which)


if __name__ == "__main__":
  tf.test.main()
