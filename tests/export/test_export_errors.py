"""Damaged and crafted exports: `keras_l2o.load` raises ValueError with the reason, every time.

Also: `export` refuses a non-empty target unless `overwrite=True` (which
replaces the content), and the exported `step()` refuses mismatched lengths
instead of broadcasting.
"""

import json
import os
import shutil

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import export as export_lib


def _module(rule="sgd"):
  return export_lib._ExportedOptimizer(  # pylint: disable=protected-access
      keras_l2o.LearnedOptimizer(rule, learning_rate=0.1))


def _metadata(module):
  return json.loads(module.keras_l2o_metadata.numpy().decode("utf-8"))


class CraftedExportTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "crafted")
    shutil.rmtree(cls.root, ignore_errors=True)
    cls.good = keras_l2o.LearnedOptimizer("mlp").export(os.path.join(cls.root, "good"))

  def _copy(self, name):
    path = os.path.join(self.root, name)
    shutil.copytree(self.good, path)
    return path

  def _crafted(self, name, edit_metadata=None, rule="sgd", edit_module=None):
    module = _module(rule)
    if edit_metadata is not None:
      value = edit_metadata(_metadata(module))
      module.keras_l2o_metadata.assign(value if isinstance(value, str) else json.dumps(value))
    if edit_module is not None:
      edit_module(module)
    path = os.path.join(self.root, name)
    tf.saved_model.save(module, path)
    return path

  def _assert_refused(self, path, pattern):
    with self.assertRaisesRegex(ValueError, pattern):
      keras_l2o.load(path)

  def test_damaged_files(self):
    def truncate(file_name, size):
      def damage(path):
        with open(os.path.join(path, file_name), "r+b") as f:
          f.truncate(size)
      return damage

    def garbage(file_name):
      def damage(path):
        with open(os.path.join(path, file_name), "wb") as f:
          f.write(b"\x00\xff not a protocol buffer \x13" * 7)
      return damage

    cases = {
        "pb_truncated": truncate("saved_model.pb", 100),
        "pb_empty": truncate("saved_model.pb", 0),
        "pb_garbage": garbage("saved_model.pb"),
        "no_variables": lambda p: shutil.rmtree(os.path.join(p, "variables")),
        "index_garbage": garbage("variables/variables.index"),
        "data_truncated": truncate("variables/variables.data-00000-of-00001", 10),
    }
    for name, damage in cases.items():
      with self.subTest(case=name):
        path = self._copy(name)
        damage(path)
        self._assert_refused(path, r"could not be read as a SavedModel \(\w+")

  def test_crafted_metadata(self):
    cases = [
        ("not_json", lambda m: "{not json", r"its keras_l2o_metadata is not JSON"),
        ("a_list", lambda m: [1, 2], r"its keras_l2o_metadata is a list, not a JSON object"),
        ("no_version", lambda m: {**m, "format_version": "1"}, r"has export format "
         r"'keras_l2o.export' version '1'; this keras_l2o reads"),
        ("no_config", lambda m: {k: v for k, v in m.items() if k != "optimizer_config"},
         r"its metadata has no `optimizer_config` object with a `rule`"),
        ("config_rule_string", lambda m: {**m, "optimizer_config": {
            **m["optimizer_config"], "rule": "sgd"}},
         r"no `optimizer_config` object with a `rule`"),
        ("no_paths", lambda m: {**m, "meta_param_paths": None},
         r"its metadata has no `meta_param_paths` list of names"),
        ("nan_learning_rate", lambda m: {**m, "optimizer_config": {
            **m["optimizer_config"], "learning_rate": float("nan")}},
         r"its optimizer could not be rebuilt \(ValueError: Argument `learning_rate` must be a "
         r"finite number >= 0\. Received: learning_rate=nan\)"),
        ("unknown_option", lambda m: {**m, "optimizer_config": {
            **m["optimizer_config"], "not_an_option": 1}},
         r"its optimizer could not be rebuilt \(ValueError: Argument\(s\) not recognized"),
        ("unknown_rule", lambda m: {**m, "optimizer_config": {
            **m["optimizer_config"], "rule": {"name": "adamw", "config": {}}}},
         r"could not be rebuilt \(ValueError: Unknown rule 'adamw'"),
        ("rule_config_list", lambda m: {**m, "optimizer_config": {
            **m["optimizer_config"], "rule": {"name": "sgd", "config": [1]}}},
         r"its optimizer could not be rebuilt \(TypeError"),
        ("extra_path", lambda m: {**m, "meta_param_paths": ["skip"]},
         r"it holds 0 meta-parameter variables for 1 meta-parameter names\."),
    ]
    for name, edit, pattern in cases:
      with self.subTest(case=name):
        self._assert_refused(self._crafted(name, edit), pattern)

  def test_crafted_hidden_size_is_refused_before_allocating(self):
    def huge(metadata):
      metadata["optimizer_config"]["rule"]["config"]["hidden_size"] = 6_000_000
      return metadata
    path = self._crafted("huge_hidden", huge, rule="mlp")
    self._assert_refused(path, r"could not be rebuilt \(ValueError: Argument `hidden_size` must be "
                         r"an integer in \[1, 1024\]\. Received: hidden_size=6000000\)")

  def test_crafted_meta_params(self):
    def nan(module):
      module.meta_param_variables[0].assign(tf.fill(module.meta_param_variables[0].shape,
                                                    float("nan")))
    self._assert_refused(self._crafted("nan_meta", rule="mlp", edit_module=nan),
                         r"could not be rebuilt \(ValueError: meta_params\['hidden'\]\['bias'\] "
                         r"must be finite; entry \(0,\) is nan\.\)")

    def colliding(metadata):
      metadata["meta_param_paths"][1] = metadata["meta_param_paths"][0] + "/x"
      return metadata
    self._assert_refused(self._crafted("colliding_paths", colliding, rule="mlp"),
                         r"its optimizer could not be rebuilt")

  def test_which_other_than_final_is_refused_on_an_export(self):
    for which in ("best", "last"):
      with self.assertRaisesRegex(ValueError, r"is an export \(a single optimizer\): "
                                  f"`which='{which}'` applies to meta-training directories only"):
        keras_l2o.load(self.good, which=which)
    self.assertEqual(keras_l2o.load(self.good, which="final").rule.name, "mlp")


class ExportTargetTest(tf.test.TestCase):

  def test_a_non_empty_directory_is_refused_unless_overwrite(self):
    path = os.path.join(self.get_temp_dir(), "target")
    os.makedirs(path)
    with open(os.path.join(path, "notes.txt"), "w", encoding="utf-8") as f:
      f.write("mine")
    optimizer = keras_l2o.LearnedOptimizer("sgd", learning_rate=0.5)
    with self.assertRaisesRegex(ValueError, r"Cannot export to '.*target': the directory is not "
                                r"empty\. Pass `overwrite=True` to replace its content\."):
      optimizer.export(path)
    self.assertEqual(os.listdir(path), ["notes.txt"])  # untouched
    optimizer.export(path, overwrite=True)
    self.assertNotIn("notes.txt", os.listdir(path))  # replaced, no stale file
    self.assertEqual(float(keras_l2o.load(path).learning_rate), 0.5)
    keras_l2o.LearnedOptimizer("sgd", learning_rate=0.25).export(path, overwrite=True)
    self.assertEqual(float(keras_l2o.load(path).learning_rate), 0.25)
    self.assertEqual(sorted(os.listdir(os.path.dirname(path))), ["target"])  # no temporary left

  def test_a_file_is_refused(self):
    path = os.path.join(self.get_temp_dir(), "a_file")
    with open(path, "w", encoding="utf-8") as f:
      f.write("x")
    with self.assertRaisesRegex(ValueError, r"it is a file, not a directory"):
      keras_l2o.LearnedOptimizer("sgd").export(path, overwrite=True)

  def test_step_refuses_a_gradient_of_another_length(self):
    path = keras_l2o.LearnedOptimizer("adam", learning_rate=0.1).export(
        os.path.join(self.get_temp_dir(), "adam"))
    exported = tf.saved_model.load(path)
    state = exported.init_state(tf.constant(5))
    iteration = tf.constant(0, tf.int64)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"step\(\): `grad` and `var` must have the same length"):
      exported.step(tf.ones([1]), tf.zeros([5]), state, iteration)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"step\(\): state field momentum must have one row per entry"):
      exported.step(tf.ones([5]), tf.zeros([5]), exported.init_state(tf.constant(1)), iteration)
    out = exported.step(tf.ones([5]), tf.zeros([5]), state, iteration)
    self.assertAllClose(out["var"], np.full([5], -0.1), rtol=1e-5)


if __name__ == "__main__":
  tf.test.main()
