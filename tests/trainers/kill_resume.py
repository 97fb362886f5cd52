"""Shared test machinery: SIGKILL a `keras-l2o-meta-train` run after a checkpoint, resume it.

Every trainer must resume a killed run to the same result as an uninterrupted
one; the meta-trainers' tests subclass `KillAndResumeMixin` and add their own
assertions on the two run directories.
"""

import json
import os
import signal
import subprocess
import sys
import time

import tensorflow as tf

from tests import testing_utils

_REPO = testing_utils.REPO_ROOT


class KillAndResumeMixin:
  """For a `tf.test.TestCase`: set `FLAGS`, `NUM_STEPS` and `KILL_AFTER` (a checkpoint number)."""

  FLAGS = ()
  NUM_STEPS = 0
  KILL_AFTER = 0
  TIMEOUT = 300

  def _command(self, save_dir, *extra):
    return [sys.executable, "-m", "scripts.meta_train", f"--save_dir={save_dir}", *self.FLAGS,
            f"--num_steps={self.NUM_STEPS}", *extra]

  def _run(self, save_dir, *extra):
    result = subprocess.run(self._command(save_dir, *extra), cwd=_REPO, capture_output=True,
                            text=True, timeout=2 * self.TIMEOUT, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])

  def kill_and_resume(self):
    """Runs once killed (SIGKILL) after checkpoint `KILL_AFTER` then resumed, once straight.

    Asserts that the kill cut the run short and that both runs end with the
    same summary.

    Returns:
      `(straight_dir, killed_dir, summary)`.
    """
    straight = os.path.join(self.get_temp_dir(), "straight")
    killed = os.path.join(self.get_temp_dir(), "killed")
    # A killed process cannot delete its temporary files (TensorFlow's autograph modules):
    # they go into this test's folder, which is deleted with the others.
    process = subprocess.Popen(self._command(killed), cwd=_REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               env=dict(os.environ, TMPDIR=self.get_temp_dir()))
    first = os.path.join(killed, "checkpoints", f"ckpt-{self.KILL_AFTER}.index")
    deadline = time.time() + self.TIMEOUT
    while not os.path.exists(first) and process.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    self.assertEqual(process.returncode, -signal.SIGKILL)
    at_kill = tf.train.latest_checkpoint(os.path.join(killed, "checkpoints"))
    self.assertIsNotNone(at_kill)
    self.assertLess(int(at_kill.rsplit("-", 1)[1]), self.NUM_STEPS)  # it really was cut short
    self.assertFalse(os.path.exists(os.path.join(killed, "final")))
    resumed = self._run(killed, "--resume")
    uninterrupted = self._run(straight)
    self.assertEqual(resumed, uninterrupted)
    return straight, killed, uninterrupted
