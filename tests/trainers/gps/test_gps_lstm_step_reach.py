"""How far one GPS iteration's supervised fit moves the `gps_lstm` step (issue 22).

The default GPS run on logistic regression lost the sum of losses to tuned gradient
descent because its policy's first step stayed short (0.8 times the gradient, where the
local controllers take 2.5 times it; docs/results/gps_logreg22). The cause is the rule's
output scale: the supervised fit's Adam moves each weight by about its learning rate per step,
and the weight decay grows with the square of the weights, so a step k times the network's
output reaches only steps of about k times its weights. These tests fit the policy with the
trainer's own supervised step (`_train_policy`, the `GroupGPSConfig` defaults) to a teacher
whose first step is -2.5 g, as the local controllers' on logistic regression.
"""

import tempfile

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from trainers.gps import group_trainer

TEACHER_RATE = 2.5


def _first_step_rate_after_fit(rule, fits, save_dir):
  """The policy's first-step rate -dx_1 / g after `fits` supervised fits of 100 Adam steps."""
  family = problems.get("logistic_regression", seed=0)
  config = group_trainer.GroupGPSConfig(num_conditions=1, validation_problems=1)
  trainer = group_trainer.GroupGPSTrainer(rule, family, config, tempfile.mkdtemp(dir=save_dir))
  rng = np.random.default_rng(0)
  # 256 coordinates' first observations (r = 0, n = g, q = 0), g of logistic regression's
  # size; the normaliser's statistics as the trainer freezes them.
  g = rng.normal(0.0, 0.1, size=(256, 1)).astype(np.float32)
  obs = np.stack([np.zeros_like(g), g, np.zeros_like(g)], axis=-1)
  trainer._freeze_normalizer(tf.constant(obs))  # pylint: disable=protected-access
  ones = tf.ones_like(g)
  for fit in range(fits):
    indices = rng.integers(0, 256, size=(config.policy_steps, config.policy_batch_size))
    trainer._train_policy_fn(  # pylint: disable=protected-access
        tf.constant(obs), tf.constant(-TEACHER_RATE * g), ones, ones,
        tf.constant(indices, tf.int32))
    del fit
  mean = rule.sequence_mean(trainer.meta_vars, tf.constant(obs)).numpy()
  return -float(np.sum(mean * g) / np.sum(g * g))


class StepReachTest(tf.test.TestCase):

  def test_defaults_keep_the_initial_policy(self):
    grad, var = tf.constant([1.0, -2.0, 0.5]), tf.zeros([3])
    steps = []
    for config in ({}, {"output_scale": 0.01, "init_step": 0.1}):
      rule = keras_l2o.rules.get("gps_lstm", **config)
      update, _ = rule.apply(rule.init_meta_params(0), grad, var, rule.init_state(var), 1,
                             loss=tf.constant(2.0))
      steps.append(update.numpy())
    self.assertAllClose(steps[0], [-0.001, 0.002, -0.0005], rtol=1e-5)
    self.assertAllClose(steps[0], steps[1], rtol=1e-5)

  def test_one_iterations_fit_reaches_the_teachers_first_step(self):
    # One GPS iteration's three fits: the default output scale (0.1) ends at 2.39 of the
    # teacher's 2.5; the former 0.01 at 0.80 (the 0.79 of the default run's policy on the test
    # problems).
    default = _first_step_rate_after_fit(keras_l2o.rules.get("gps_lstm"), 3,
                                         self.get_temp_dir())
    old = _first_step_rate_after_fit(
        keras_l2o.rules.get("gps_lstm", output_scale=0.01, init_step=0.1), 3,
        self.get_temp_dir())
    self.assertGreater(default, 0.8 * TEACHER_RATE)
    self.assertLess(old, 0.4 * TEACHER_RATE)


if __name__ == "__main__":
  tf.test.main()
