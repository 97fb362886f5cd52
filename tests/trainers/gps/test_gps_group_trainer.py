"""GroupGPSTrainer end to end (small sizes), and gps_lstm inside model.fit."""

import json
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from trainers import base
from trainers.gps import group_trainer


def _config(**overrides):
  settings = dict(iterations=2, num_conditions=1, samples_per_condition=2,
                  coordinates_per_group=8, horizon=6, inner_iterations=2, policy_steps=3,
                  validation_problems=1, momentum_rates=(0.1, 0.3), momentum_values=(0.0, 0.5))
  settings.update(overrides)
  return group_trainer.GroupGPSConfig(**settings)


def _family():
  return problems.get("digits_mlp", hidden_sizes=(4,), activation="relu", horizon=6,
                      init_scale="glorot", batch_size=16)


class GroupTrainerTest(tf.test.TestCase):

  def test_runs_resumes_exactly_and_exports_a_loadable_optimizer(self):
    whole_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    whole = group_trainer.GroupGPSTrainer("gps_lstm", _family(), _config(), whole_dir).run()
    self.assertEqual(whole["iterations"], 2)
    self.assertTrue(np.isfinite(whole["best_validation_loss"]))
    # The supervised fit toward the local controllers lowered the policy's validation loss
    # (2.3616 -> 2.3595 at these tiny sizes).
    self.assertLess(whole["best_validation_loss"], whole["first_validation_loss"] - 1e-3)
    split_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    group_trainer.GroupGPSTrainer("gps_lstm", _family(), _config(iterations=1), split_dir).run()
    resumed = group_trainer.GroupGPSTrainer("gps_lstm", _family(), _config(), split_dir).run()
    self.assertEqual(resumed["meta_params_sha256"], whole["meta_params_sha256"])
    self.assertAllClose(resumed["last_validation_loss"], whole["last_validation_loss"], rtol=0)
    records = [json.loads(line) for line in open(os.path.join(whole_dir, "metrics.jsonl"))]
    self.assertEqual([r["step"] for r in records], [0, 1, 2])
    for record in records[1:]:
      self.assertTrue(np.isfinite(record["meta_loss"]))
      self.assertGreater(record["kl_to_sampled"], 0.0)
    optimizer = keras_l2o.load(whole_dir, which="final")
    self.assertEqual(optimizer.rule.name, "gps_lstm")
    # final/ is best/ (restore_best); here the last iteration was also the best one.
    digest = lambda which: base.digest(keras_l2o.load(whole_dir, which=which).meta_params)  # noqa: E731
    self.assertEqual(digest("final"), whole["meta_params_sha256"])
    self.assertEqual(digest("best"), whole["meta_params_sha256"])
    self.assertEqual(digest("last"), whole["last_meta_params_sha256"])
    with open(os.path.join(whole_dir, "config.json")) as f:
      self.assertTrue(json.load(f)["coordinate_groups"])

  def test_refuses_other_rules_and_bad_configs(self):
    with self.assertRaisesRegex(ValueError, r"rules \['gps_lstm', 'gps_general'\].*received rule 'lstm'"):
      group_trainer.GroupGPSTrainer("lstm", _family(), _config(), self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, r"`momentum_values` must .*0\.7"):
      _config(momentum_values=(0.7,)).validate()
    with self.assertRaisesRegex(ValueError, "`init_noise` must be a positive number"):
      _config(init_noise=0.0).validate()
    with self.assertRaisesRegex(ValueError, r"`restore_best` must be True or False\. Received: "
                                r"restore_best='yes'"):
      _config(restore_best="yes").validate()


class FitTest(tf.test.TestCase):

  def test_model_fit_feeds_the_loss_to_a_loss_using_rule(self):
    x = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    y = (x @ np.arange(1.0, 6.0, dtype=np.float32))[:, None]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1)])
    rule = keras_l2o.rules.get("gps_lstm", hidden_size=4, output_scale=1.0, init_step=0.1)
    optimizer = keras_l2o.LearnedOptimizer(rule)
    model.compile(optimizer=optimizer, loss="mse")
    first = model.evaluate(x, y, verbose=0)
    history = model.fit(x, y, batch_size=64, epochs=60, verbose=0, shuffle=False)
    losses = history.history["loss"]
    self.assertTrue(np.all(np.isfinite(losses)))
    self.assertLess(losses[-1], 0.5 * first)
    # The recorded objective is the last step's batch loss (full batch here).
    self.assertAllClose(float(optimizer._loss_variable.value), losses[-1], rtol=1e-5)  # pylint: disable=protected-access


if __name__ == "__main__":
  tf.test.main()
