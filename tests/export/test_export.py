"""SavedModel export: usable without keras_l2o, and loaded back identical."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib

# Runs in a fresh interpreter where importing keras_l2o is impossible.
_STANDALONE = r"""
import json, sys
sys.modules["keras_l2o"] = None  # any `import keras_l2o` now raises ImportError
import numpy as np, tensorflow as tf
path, steps = sys.argv[1], int(sys.argv[2])
opt = tf.saved_model.load(path)
x = tf.constant(np.linspace(-1.0, 1.0, 7), tf.float32)
target = tf.constant(np.linspace(0.5, -0.5, 7), tf.float32)
state = opt.init_state(tf.constant(7))
for i in range(steps):
  grad = 2.0 * (x - target)
  out = opt.step(grad, x, state, tf.constant(i, tf.int64))
  x, state = out["var"], out["state"]
print(json.dumps({"x": x.numpy().tolist(), "lr": float(opt.learning_rate(tf.constant(3, tf.int64))),
                  "fields": sorted(state)}))
"""


def _perturbed(rule, seed=3):
  params = meta_params_lib.to_numpy(rule.init_meta_params(seed))
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(lambda a: a + 0.05 * rng.normal(size=a.shape), params)


def _train_variable(optimizer, steps):
  x = tf.Variable(np.linspace(-1.0, 1.0, 7).astype(np.float32))
  target = tf.constant(np.linspace(0.5, -0.5, 7), tf.float32)
  for _ in range(steps):
    optimizer.apply([2.0 * (x - target)], [x])
  return x.numpy()


class ExportTest(tf.test.TestCase):

  def _export(self, rule_name, learning_rate=1.0, **kwargs):
    rule = keras_l2o.rules.get(rule_name)
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_perturbed(rule),
                                           learning_rate=learning_rate, **kwargs)
    path = os.path.join(self.get_temp_dir(), f"export_{rule_name}")
    optimizer.export(path)
    return optimizer, path

  def _run_standalone(self, path, steps):
    result = subprocess.run([sys.executable, "-c", _STANDALONE, path, str(steps)],
                            capture_output=True, text=True, timeout=120, check=False,
                            cwd=self.get_temp_dir(),
                            env={**os.environ, "PYTHONPATH": ""})
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])

  def test_exported_lstm_runs_without_keras_l2o_and_matches_the_optimizer(self):
    optimizer, path = self._export("lstm")
    out = self._run_standalone(path, 20)
    expected = _train_variable(keras_l2o.load(path), 20)
    self.assertAllClose(expected, out["x"], rtol=1e-6, atol=1e-7)
    self.assertEqual(out["fields"], ["c1", "c2", "h1", "h2"])
    self.assertEqual(out["lr"], 1.0)
    # It moved: the test would be vacuous otherwise.
    self.assertGreater(np.abs(np.array(out["x"]) - np.linspace(-1, 1, 7)).max(), 1e-2)
    del optimizer

  def test_exported_schedule_is_evaluated_at_the_iteration(self):
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    _, path = self._export("mlp", learning_rate=schedule)
    out = self._run_standalone(path, 5)
    self.assertAllClose(out["lr"], 0.5 * 0.5**3)
    expected = _train_variable(keras_l2o.load(path), 5)
    self.assertAllClose(expected, out["x"], rtol=1e-6, atol=1e-7)

  def test_load_returns_an_optimizer_that_trains_exactly_like_the_original(self):
    optimizer, path = self._export("mlp", learning_rate=3.0, clipnorm=0.5, weight_decay=1e-3)
    loaded = keras_l2o.load(path)
    self.assertIsInstance(loaded, keras_l2o.LearnedOptimizer)
    self.assertEqual(loaded.rule, optimizer.rule)
    self.assertEqual((loaded.clipnorm, loaded.weight_decay), (0.5, 1e-3))
    tf.nest.map_structure(lambda a, b: self.assertAllEqual(a.numpy(), b.numpy()),
                          loaded.meta_params, optimizer.meta_params)
    self.assertAllEqual(_train_variable(optimizer, 10), _train_variable(loaded, 10))

  def test_hand_designed_rule_exports_too(self):
    _, path = self._export("adam", learning_rate=0.1)
    out = self._run_standalone(path, 3)
    expected = _train_variable(keras.optimizers.Adam(0.1), 3)
    self.assertAllClose(expected, out["x"], rtol=1e-6)

  def test_a_directory_without_saved_model_is_refused(self):
    path = self.get_temp_dir()
    with self.assertRaisesRegex(ValueError, f"'{path}' is not a keras_l2o export: no "
                                r"saved_model\.pb in that directory\."):
      keras_l2o.load(path)

  def test_a_foreign_saved_model_is_refused(self):
    path = os.path.join(self.get_temp_dir(), "foreign")
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, path)
    with self.assertRaisesRegex(ValueError, r"is a SavedModel but not a keras_l2o export "
                                r"\(it has no keras_l2o_metadata\)\."):
      keras_l2o.load(path)

  def test_load_which_is_validated(self):
    with self.assertRaisesRegex(ValueError, r"Argument `which` must be 'final', 'best' or "
                                r"'last'\. Received: which='latest'"):
      keras_l2o.load(self.get_temp_dir(), which="latest")


if __name__ == "__main__":
  tf.test.main()
