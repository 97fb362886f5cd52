"""A run directory loses nothing: one writer (the lock), resume from a readable checkpoint."""

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import run_directory
from keras_l2o import run_lock
from trainers import base
from trainers import bptt
from trainers import checkpointing
from trainers.gps import group_trainer
from trainers.gps import trainer as gps_trainer

# A process that takes a run directory's lock with keras_l2o.run_lock (loaded from its file:
# no TensorFlow import, so it starts in a fraction of a second), reports, then waits for a
# line on stdin; "die" makes it exit without releasing (as a killed process would).
_HOLDER = r"""
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("run_lock", sys.argv[1])
run_lock = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_lock)
try:
  run_lock.acquire(sys.argv[2])
except run_lock.RunLockedError as e:
  print("refused:", e, flush=True)
  sys.exit(0)
print("locked", os.getpid(), flush=True)
if sys.stdin.readline().strip() == "die":
  os._exit(0)
run_lock.release(sys.argv[2])
"""
_LOCK_MODULE = run_lock.__file__


def _holder(save_dir):
  """Starts a holder of `save_dir`'s lock; returns `(process, its first output line)`."""
  process = subprocess.Popen([sys.executable, "-c", _HOLDER, _LOCK_MODULE, save_dir],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  return process, process.stdout.readline().strip()


def _finish(process, command="release"):
  process.communicate(command + "\n", timeout=30)


def _tiny_trainer(save_dir, num_steps):
  config = bptt.BPTTConfig(num_steps=num_steps, unroll_length=5, horizon=10, validation_every=2,
                           validation_problems=1, checkpoint_every=2, log_every=1)
  return bptt.BPTTTrainer(keras_l2o.rules.get("mlp", hidden_size=2),
                          problems.get("quadratic", num_quadratics=2), config, save_dir)


def _steps(save_dir):
  with open(os.path.join(save_dir, run_directory.METRICS_FILE), encoding="utf-8") as f:
    return [json.loads(line)["step"] for line in f]


class RunLockTest(tf.test.TestCase):

  def test_a_second_process_is_refused_with_the_holder_named(self):
    save_dir = self.get_temp_dir() + "/locked"
    process, line = _holder(save_dir)
    self.addCleanup(process.kill)
    pid = process.pid
    self.assertEqual(line, f"locked {pid}")
    with open(os.path.join(save_dir, "run.lock"), encoding="utf-8") as f:
      record = json.load(f)
    self.assertEqual((record["pid"], record["host"]), (pid, socket.gethostname()))
    with self.assertRaises(run_lock.RunLockedError) as ctx:
      run_lock.acquire(save_dir)
    self.assertEqual(str(ctx.exception),
                     f"The run directory {save_dir} is in use by process {pid} on host "
                     f"{socket.gethostname()} (since {record['started']}): one process writes a "
                     "run at a time. Wait for it to finish, or stop it and pass --resume.")
    self.assertEqual(run_lock.holder(save_dir)["pid"], pid)
    _finish(process)  # released on exit: the lock is free and its file empty
    self.assertIsNone(run_lock.holder(save_dir))
    with run_lock.hold(save_dir), run_lock.hold(save_dir):  # reentrant in one process
      with open(os.path.join(save_dir, "run.lock"), encoding="utf-8") as f:
        self.assertEqual(json.load(f)["pid"], os.getpid())
    self.assertFalse(run_lock.is_held(save_dir))

  def test_released_on_an_exception_and_taken_over_from_a_dead_holder(self):
    save_dir = self.get_temp_dir() + "/released"
    with self.assertRaisesRegex(RuntimeError, "boom"):
      with run_lock.hold(save_dir):
        raise RuntimeError("boom")
    process, line = _holder(save_dir)  # another process can take it now
    self.assertEqual(line, f"locked {process.pid}")
    _finish(process, "die")  # exits without releasing: the OS drops the flock, the record stays
    with self.assertLogs(level="WARNING") as logs:
      with run_lock.hold(save_dir):
        pass
    self.assertIn(f"Took over the lock of {save_dir} from process {process.pid} on host "
                  f"{socket.gethostname()}", "\n".join(logs.output))
    with open(os.path.join(save_dir, "run.lock"), encoding="utf-8") as f:
      self.assertEqual(f.read(), "")  # released: emptied

  def test_every_trainer_refuses_a_locked_directory_before_writing(self):
    save_dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, save_dir, ignore_errors=True)
    process, _ = _holder(save_dir)
    self.addCleanup(process.kill)
    family = problems.get("logistic_regression", horizon=6)
    trainers = [
        _tiny_trainer(save_dir, 2),
        gps_trainer.GPSTrainer("gps_policy", family, gps_trainer.GPSConfig(
            num_conditions=2, iterations=1, horizon=6, validation_problems=1), save_dir),
        group_trainer.GroupGPSTrainer("gps_lstm", family, group_trainer.GroupGPSConfig(
            num_conditions=2, iterations=1, horizon=6, validation_problems=1), save_dir)]
    for trainer in trainers:
      with self.assertRaisesRegex(run_lock.RunLockedError,
                                  f"is in use by process {process.pid} on host"):
        trainer.run()
    self.assertEqual(sorted(os.listdir(save_dir)), ["run.lock"])  # nothing written
    _finish(process)


class ResumeTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.root = tempfile.mkdtemp()
    cls.digest_4 = _tiny_trainer(os.path.join(cls.root, "straight"), 4).run()[
        "meta_params_sha256"]

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.root, ignore_errors=True)
    super().tearDownClass()

  def _run_of_4(self, name):
    """A copy of the straight 4-step run (checkpoints at steps 0, 2 and 4)."""
    save_dir = os.path.join(self.root, name)
    shutil.copytree(os.path.join(self.root, "straight"), save_dir)
    return save_dir, os.path.join(save_dir, "checkpoints")

  def test_missing_state_file_resumes_from_the_newest_checkpoint(self):
    save_dir, checkpoints = self._run_of_4("no_state")
    os.remove(os.path.join(checkpoints, "checkpoint"))
    for path in glob.glob(checkpoints + "/ckpt-4.*"):  # as if killed after ckpt-2 ...
      os.remove(path)
    with open(os.path.join(save_dir, run_directory.METRICS_FILE), "a", encoding="utf-8") as f:
      f.write('{"step": 3}\n')  # ... and the record of step 3
    os.makedirs(os.path.join(checkpoints, "old"))  # (not a checkpoint: ignored)
    trainer = _tiny_trainer(save_dir, 4)
    self.assertTrue(trainer.restore())
    self.assertEqual(int(trainer.global_step), 2)
    self.assertEqual(trainer.run()["meta_params_sha256"], self.digest_4)
    self.assertEqual(_steps(save_dir), [0, 1, 2, 3, 4])
    # The rewritten state lets the manager delete old checkpoints again (max_to_keep=3).
    _tiny_trainer(save_dir, 6).run()
    self.assertEqual(sorted(os.path.basename(p) for p in glob.glob(checkpoints + "/*.index")),
                     ["ckpt-2.index", "ckpt-4.index", "ckpt-6.index"])

  def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(self):
    save_dir, checkpoints = self._run_of_4("truncated")
    with open(glob.glob(checkpoints + "/ckpt-4.data-*")[0], "r+b") as f:
      f.truncate(10)
    os.makedirs(os.path.join(checkpoints, "ckpt-6_temp"))  # a write that was killed
    with self.assertLogs(level="WARNING") as logs:
      result = _tiny_trainer(save_dir, 4).run()
    output = "\n".join(logs.output)
    self.assertIn(f"Removed {checkpoints}/ckpt-6_temp: a checkpoint write that was interrupted.",
                  output)
    self.assertIn(f"Skipping checkpoint {checkpoints}/ckpt-4 (meta-step 4): IndexError: Read less "
                  "bytes than requested.", output)
    self.assertIn(f"Resuming from {checkpoints}/ckpt-2 (meta-step 2) instead of the newer "
                  "unreadable ckpt-4.", output)
    self.assertFalse(os.path.exists(os.path.join(checkpoints, "ckpt-6_temp")))
    self.assertEqual(result["meta_params_sha256"], self.digest_4)  # as if never damaged
    self.assertEqual(_steps(save_dir), [0, 1, 2, 3, 4])

  def test_no_readable_checkpoint_is_an_error_not_a_restart(self):
    save_dir, checkpoints = self._run_of_4("all_bad")
    for path in glob.glob(checkpoints + "/ckpt-*.index"):
      with open(path, "wb") as f:
        f.write(b"garbage")
    with self.assertRaises(run_directory.RunDirectoryError) as ctx:
      _tiny_trainer(save_dir, 6).run()
    message = str(ctx.exception)
    short = "OpError: file is too short to be an sstable"
    self.assertEqual(message, f"None of the 3 checkpoints in {checkpoints} can be read (ckpt-4: "
                     f"{short}; ckpt-2: {short}; ckpt-0: {short}). The run cannot be resumed; "
                     "start it again in a new --save_dir.")
    self.assertEqual(_steps(save_dir), [0, 1, 2, 3, 4])  # the metrics were left alone

  def test_a_kill_before_the_first_checkpoint_leaves_no_duplicate_record(self):
    save_dir, checkpoints = self._run_of_4("before_first")
    shutil.rmtree(checkpoints)  # as if killed after the step-0 record, before ckpt-0
    self.assertEqual(_tiny_trainer(save_dir, 4).run()["meta_params_sha256"], self.digest_4)
    self.assertEqual(_steps(save_dir), [0, 1, 2, 3, 4])

  def test_metrics_lines(self):
    log = base.MetricsLog(self.get_temp_dir())
    with open(log.path, "w", encoding="utf-8") as f:
      f.write('{"step": 0}\n{"step": 1, "a": 1}\n{"step": 1, "a": 2}\n{"step": 2}\n{"st')
    with self.assertLogs(level="WARNING") as logs:
      log.truncate_after(1)  # the cut last line is dropped, step 1 keeps its last record
    self.assertIn("Dropping the incomplete last line", logs.output[0])
    self.assertEqual(log.read(), [{"step": 0}, {"step": 1, "a": 2}])
    with open(log.path, "a", encoding="utf-8") as f:
      f.write("oops\n{\"step\": 3}\n")
    with self.assertRaises(run_directory.RunDirectoryError) as ctx:
      log.read()
    self.assertEqual(str(ctx.exception), f"Line 3 of {log.path} is not a metrics record "
                     "(Expecting value: line 1 column 1 (char 0)): 'oops'. Delete that line to "
                     "resume the run.")
    self.assertEqual(checkpointing.candidates(self.get_temp_dir() + "/none"), [])


if __name__ == "__main__":
  tf.test.main()
