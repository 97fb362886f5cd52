"""keras-l2o-meta-train --trainer=pes: SIGKILL + --resume is bit-identical; bad settings are named."""

import subprocess
import sys

import numpy as np
import tensorflow as tf

import keras_l2o
from tests import testing_utils
from tests.trainers import kill_resume
from trainers import base as trainers_base

_REPO = testing_utils.REPO_ROOT


class KillAndResumeTest(kill_resume.KillAndResumeMixin, tf.test.TestCase):
  """A PES run killed with SIGKILL after a checkpoint resumes to the same meta-parameters."""

  FLAGS = ["--trainer=pes", "--rule=mlp", '--rule_config={"hidden_size": 4}',
           "--problem=quadratic", '--problem_config={"num_quadratics": 8}', "--unroll_length=5",
           "--min_horizon=10", "--max_horizon=30", "--num_pairs=2",
           "--checkpoint_every=3", "--validation_every=30", "--validation_problems=2",
           "--seed=3", "--meta_learning_rate=0.01"]
  NUM_STEPS = 60
  KILL_AFTER = 6
  TIMEOUT = 200

  def test_sigkill_then_resume_equals_uninterrupted(self):
    straight, killed, _ = self.kill_and_resume()
    self.assertEqual(trainers_base.read_config(killed)["settings"]["trainer"], "pes")
    for a, b in zip(tf.nest.flatten(keras_l2o.load(straight).meta_params),
                    tf.nest.flatten(keras_l2o.load(killed).meta_params)):
      self.assertAllEqual(a.numpy(), b.numpy())
    init = tf.nest.flatten(keras_l2o.rules.get("mlp", hidden_size=4).init_meta_params(3))
    moved = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(
        tf.nest.flatten(keras_l2o.load(straight).meta_params), init))
    self.assertGreater(moved, 1e-3)  # it trained: not a vacuous equality


class CommandLineErrorsTest(tf.test.TestCase):

  def _error(self, *flags):
    result = subprocess.run([sys.executable, "-m", "scripts.meta_train", "--trainer=pes",
                             "--rule=learned_lr", "--problem=quadratic",
                             f"--save_dir={self.get_temp_dir()}/run_{len(flags)}", *flags],
                            cwd=_REPO, capture_output=True, text=True, timeout=300, check=False)
    self.assertNotEqual(result.returncode, 0)
    return result.stderr

  def test_pairs_must_split_over_the_replicas(self):
    self.assertIn("`num_pairs` must be a multiple of the number of replicas (2). Received: "
                  "num_pairs=3", self._error("--num_pairs=3", "--strategy=mirrored",
                                             "--num_cpu_devices=2"))

  def test_bad_horizons_are_named(self):
    self.assertIn("`min_horizon` must be at most `max_horizon`. Received: min_horizon=500, "
                  "max_horizon=200", self._error("--min_horizon=500", "--max_horizon=200"))


if __name__ == "__main__":
  tf.test.main()
