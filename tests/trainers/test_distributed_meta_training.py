"""BPTT meta-training under tf.distribute, and the local cluster launcher.

Each strategy runs in its own processes (the CPU split and the cluster must be
set up before TensorFlow initialises), bounded in time:

* MirroredStrategy over 2 logical CPUs: the same meta-gradient and the same
  meta-parameters as one device unrolling the same problems;
* MultiWorkerMirroredStrategy, 2 worker processes on 127.0.0.1: both workers
  end with the same meta-parameters, equal to the single-device run's;
* ParameterServerStrategy, chief + 2 workers + 1 PS: asynchronous
  meta-training completes, improves the validation loss, and the exported
  optimizer holds the meta-parameters the chief reported;
* killing a worker makes the launcher stop the cluster and fail within 60 s.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from tests import testing_utils
from trainers import base as trainers_base
from trainers import bptt

ROOT = testing_utils.REPO_ROOT

# The small meta-training run every test uses: 6 meta-steps, trajectories of 10
# steps in truncations of 5, so slots restart on fresh problems twice.
RUN = {"rule": "mlp", "problem": "quadratic", "seed": 3, "num_quadratics": 8, "num_steps": 6,
       "unroll_length": 5, "horizon": 10, "validation_every": 6, "validation_problems": 2,
       "checkpoint_every": 3, "meta_learning_rate": 0.01}
RUN_FLAGS = [f"--rule={RUN['rule']}", f"--problem={RUN['problem']}",
             "--problem_config=" + json.dumps({"num_quadratics": RUN["num_quadratics"],
                                              "seed": RUN["seed"]})] + [
                 f"--{k}={RUN[k]}" for k in ("num_steps", "unroll_length", "horizon",
                                             "validation_every", "validation_problems",
                                             "checkpoint_every", "meta_learning_rate")]


def _config(**overrides):
  values = {k: RUN[k] for k in ("num_steps", "unroll_length", "horizon", "validation_every",
                                "validation_problems", "checkpoint_every",
                                "meta_learning_rate")}
  values.update(overrides)
  return bptt.BPTTConfig(**values)


def _family():
  return problems.get(RUN["problem"], seed=RUN["seed"], num_quadratics=RUN["num_quadratics"])


# Runs in a fresh process: split the CPU, then compare a mirrored trainer with
# one device unrolling the same problems (argv: rule, problems per replica).
_MIRRORED_BPTT = r"""
import json, os, sys
import numpy as np
from keras_l2o import distribute
strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
import tensorflow as tf, keras_l2o
from keras_l2o import problems
from trainers import bptt

rule, per_replica, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def trainer(strategy, per_replica, name):
  config = bptt.BPTTConfig(num_steps=6, unroll_length=5, horizon=10, validation_every=6,
                           validation_problems=2, checkpoint_every=3, meta_learning_rate=1e-2,
                           problems_per_replica=per_replica)
  return bptt.BPTTTrainer(keras_l2o.rules.get(rule), problems.get("quadratic", seed=3,
                                                                  num_quadratics=8),
                          config, os.path.join(root, name), strategy=strategy)

mirrored = trainer(strategy, per_replica, "mirrored")
single = trainer(None, 2 * per_replica, "single")
for t in (mirrored, single):
  for slot in range(t.meta_batch):
    t._start_trajectory(slot)
gm, _, outs_m = mirrored.meta_gradient()
gs, _, outs_s = single.meta_gradient()
rm, rs = mirrored.run(), single.run()
flat = lambda t: [v.numpy() for v in tf.nest.flatten(keras_l2o.load(t.save_dir).meta_params)]
init = [v.numpy() for v in tf.nest.flatten(keras_l2o.rules.get(rule).init_meta_params(0))]
replicas = [strategy.experimental_local_results(v) for v in mirrored._flat_meta]
print(json.dumps({
    "replicas": mirrored.num_replicas, "meta_batch": [mirrored.meta_batch, single.meta_batch],
    "grad_diff": max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(gm, gs)),
    "grad_scale": max(float(np.abs(b.numpy()).max()) for b in gs),
    "loss_diff": max(abs(float(a[1]) - float(b[1])) for a, b in zip(outs_m, outs_s)),
    "param_diff": max(float(np.abs(a - b).max()) for a, b in zip(flat(mirrored), flat(single))),
    "moved": max(float(np.abs(a - b).max()) for a, b in zip(flat(single), init)),
    "replica_diff": max(float(np.abs(r[0].numpy() - r[1].numpy()).max()) for r in replicas),
    "trajectories": [int(mirrored.next_trajectory), int(single.next_trajectory)],
    "digests": [rm["meta_params_sha256"], rs["meta_params_sha256"]],
}))
"""


def _last_json(text):
  return json.loads(text.strip().splitlines()[-1])


# The cluster processes' temporary folders (a non-chief worker's keras_l2o_worker_*, which a
# killed or torn-down worker cannot delete) go into one folder deleted after this module's tests.
_CLUSTER_TMP = tempfile.TemporaryDirectory(prefix="keras_l2o_test_cluster_")
_CLUSTER_ENV = dict(os.environ, TMPDIR=_CLUSTER_TMP.name)


def tearDownModule():  # pylint: disable=invalid-name
  # Not left to the folder's finalizer at exit: pytest-xdist kills a worker that is slow to exit.
  _CLUSTER_TMP.cleanup()


def _launch(args, timeout=240):
  """Runs the launcher to completion; returns (returncode, stdout, stderr, seconds)."""
  start = time.monotonic()
  result = subprocess.run([sys.executable, "-m", "scripts.launch_local_cluster"] + args,
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
                          env=_CLUSTER_ENV)
  return result.returncode, result.stdout, result.stderr, time.monotonic() - start


def _single_device_digest(save_dir):
  return bptt.BPTTTrainer(RUN["rule"], _family(), _config(problems_per_replica=2),
                          save_dir).run()["meta_params_sha256"]


class MirroredMetaTrainingTest(tf.test.TestCase):

  def _run(self, rule, per_replica):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_BPTT, rule, str(per_replica),
                             tempfile.mkdtemp(dir=self.get_temp_dir())],
                            capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return _last_json(result.stdout)

  def test_two_replicas_equal_one_device_over_the_same_problems(self):
    for rule, per_replica in (("mlp", 1), ("lstm", 2)):
      out = self._run(rule, per_replica)
      self.assertEqual(out["replicas"], 2)
      self.assertEqual(out["meta_batch"], [2 * per_replica] * 2)
      # The averaged meta-gradient of the first meta-batch, and everything after.
      self.assertLessEqual(out["grad_diff"], 1e-6 * out["grad_scale"], msg=rule)
      self.assertGreater(out["grad_scale"], 1e-3, msg=rule)
      self.assertLessEqual(out["loss_diff"], 1e-6, msg=rule)
      self.assertLessEqual(out["param_diff"], 1e-6, msg=rule)
      self.assertGreater(out["moved"], 1e-2, msg=rule)  # it trained: not a vacuous equality
      self.assertEqual(out["replica_diff"], 0.0, msg=rule)
      # Every slot restarted on fresh problems at the horizon, in the same order.
      self.assertEqual(out["trajectories"][0], out["trajectories"][1])
      self.assertEqual(out["trajectories"][0], 8 * per_replica)  # 2P + 3 restarts x 2P
      if per_replica == 1:  # the same two-term sums: bit-identical (with 2 per replica the
        # sums associate differently, (g0+g1)+(g2+g3) against ((g0+g1)+g2)+g3)
        self.assertEqual(out["digests"][0], out["digests"][1], msg=rule)

  def test_a_mixture_cannot_be_split_over_replicas(self):
    script = ("from keras_l2o import distribute\n"
              "s = distribute.get_strategy('mirrored', num_cpu_devices=2)\n"
              "from keras_l2o import problems\nfrom trainers import bptt\nimport sys\n"
              "m = problems.MixtureFamily([problems.get('quadratic', dims=3, num_quadratics=2),"
              " problems.get('quadratic', dims=5, num_quadratics=2)])\n"
              "try:\n  bptt.BPTTTrainer('mlp', m, bptt.BPTTConfig(num_steps=1, unroll_length=5,"
              " horizon=10), sys.argv[1], strategy=s)\n"
              "except ValueError as e:\n  print(e)\n")
    result = subprocess.run([sys.executable, "-c", script, self.get_temp_dir()],
                            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    self.assertIn("A mixture of 2 problem families cannot be meta-trained over 2 replicas",
                  result.stdout)


class ClusterTest(tf.test.TestCase):

  def test_multi_worker_run_agrees_with_one_device(self):
    save_dir = os.path.join(self.get_temp_dir(), "multi_worker")
    logs = os.path.join(self.get_temp_dir(), "logs")
    code, out, err, _ = _launch(["--num_workers=2", f"--cluster_log_dir={logs}",
                                 "--timeout=200", "--"] + RUN_FLAGS + [f"--save_dir={save_dir}"])
    self.assertEqual(code, 0, msg=err[-3000:])
    self.assertIn("Started worker0", out)
    with open(os.path.join(logs, "worker1.log"), encoding="utf-8") as f:
      worker1 = _last_json(f.read())
    worker0 = _last_json(out)
    self.assertEqual(worker0["steps"], RUN["num_steps"])
    # Both workers hold the same meta-parameters, and they are the single-device ones.
    self.assertEqual(worker0["meta_params_sha256"], worker1["meta_params_sha256"])
    self.assertEqual(worker0["meta_params_sha256"],
                     _single_device_digest(os.path.join(self.get_temp_dir(), "single")))
    self.assertEqual(trainers_base.digest(keras_l2o.load(save_dir).meta_params),
                     worker0["meta_params_sha256"])
    config = trainers_base.read_config(save_dir)
    self.assertEqual(config["strategy"], {"class": "CollectiveAllReduceStrategy",
                                          "num_replicas": 2, "meta_batch": 2})
    # Only the chief (worker 0) wrote the run directory.
    self.assertEqual(sorted(os.listdir(save_dir)), ["best", "checkpoints", "config.json",
                                                    "final", "metrics.jsonl", "run.lock",
                                                    "tensorboard"])

  def test_parameter_server_run_trains_asynchronously(self):
    save_dir = os.path.join(self.get_temp_dir(), "ps")
    logs = os.path.join(self.get_temp_dir(), "ps_logs")  # (else a keras_l2o_cluster_* temp dir)
    code, out, err, _ = _launch(["--num_workers=2", "--num_ps=1", "--timeout=200",
                                 f"--cluster_log_dir={logs}", "--"]
                                + RUN_FLAGS + [f"--save_dir={save_dir}"])
    self.assertEqual(code, 0, msg=err[-3000:])
    result = _last_json(out)
    self.assertEqual(result["steps"], RUN["num_steps"])
    self.assertEqual(result["nonfinite_skips"], 0)
    self.assertLess(result["last_validation_loss"], 0.99 * result["first_validation_loss"])
    self.assertEqual(trainers_base.digest(keras_l2o.load(save_dir).meta_params),
                     result["meta_params_sha256"])
    config = trainers_base.read_config(save_dir)
    self.assertEqual(config["trainer"], "bptt_async")
    self.assertEqual(config["strategy"]["meta_batch"], 2)
    self.assertEqual(config["strategy"]["num_workers"], 2)
    records = trainers_base.MetricsLog(save_dir).read()
    self.assertEqual([r["step"] for r in records if "validation_loss" in r], [0, 6])

  def test_killing_a_worker_fails_the_launcher_quickly(self):
    logs = os.path.join(self.get_temp_dir(), "kill_logs")
    save_dir = os.path.join(self.get_temp_dir(), "kill")
    flags = [f if not f.startswith("--num_steps") else "--num_steps=100000" for f in RUN_FLAGS]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "scripts.launch_local_cluster", "--num_workers=2",
         f"--cluster_log_dir={logs}", "--timeout=300", "--"] + flags + [f"--save_dir={save_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_CLUSTER_ENV)
    try:
      deadline = time.monotonic() + 180
      pids_file = os.path.join(logs, "pids.json")
      while time.monotonic() < deadline:  # wait until the workers are meta-training
        if os.path.exists(os.path.join(save_dir, "checkpoints", "checkpoint")):
          break
        self.assertIsNone(launcher.poll(), msg="the launcher stopped before the kill")
        time.sleep(0.5)
      with open(pids_file, encoding="utf-8") as f:
        pids = json.load(f)
      killed = time.monotonic()
      os.kill(pids["worker1"], signal.SIGKILL)
      _, err = launcher.communicate(timeout=90)
      seconds = time.monotonic() - killed
    finally:
      if launcher.poll() is None:
        launcher.kill()
    self.assertEqual(launcher.returncode, 1)
    self.assertLess(seconds, 60.0)
    self.assertIn(f"FAILED: worker1 (pid {pids['worker1']}) exited with code -9", err)
    for pid in pids.values():  # every process of the cluster is gone
      with self.assertRaises(ProcessLookupError):
        os.kill(pid, 0)

  def test_timeout_stops_the_cluster(self):
    save_dir = os.path.join(self.get_temp_dir(), "timeout")
    flags = [f if not f.startswith("--num_steps") else "--num_steps=100000" for f in RUN_FLAGS]
    logs = os.path.join(self.get_temp_dir(), "timeout_logs")
    code, _, err, seconds = _launch(["--num_workers=1", "--timeout=8", f"--cluster_log_dir={logs}",
                                     "--"] + flags
                                    + [f"--save_dir={save_dir}"])
    self.assertEqual(code, 2)
    self.assertIn("FAILED: timeout after 8 s", err)
    self.assertLess(seconds, 40.0)


class StrategyFlagTest(tf.test.TestCase):

  def test_meta_train_cli_with_mirrored_strategy_equals_one_device(self):
    save_dir = os.path.join(self.get_temp_dir(), "cli_mirrored")
    result = subprocess.run([sys.executable, "-m", "scripts.meta_train"] + RUN_FLAGS +
                            ["--strategy=mirrored", "--num_cpu_devices=2",
                             f"--save_dir={save_dir}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    self.assertEqual(_last_json(result.stdout)["meta_params_sha256"],
                     _single_device_digest(os.path.join(self.get_temp_dir(), "single")))
    settings = trainers_base.read_config(save_dir)["settings"]
    self.assertEqual((settings["strategy"], settings["num_cpu_devices"]), ("mirrored", 2))

  def test_num_cpu_devices_needs_mirrored(self):
    result = subprocess.run([sys.executable, "-m", "scripts.meta_train", "--num_cpu_devices=2",
                             f"--save_dir={self.get_temp_dir()}/x"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("--num_cpu_devices=2 needs --strategy=mirrored. Received: --strategy=default.",
                  result.stderr)

  def test_single_device_trainer_still_reports_one_replica(self):
    trainer = bptt.BPTTTrainer(RUN["rule"], _family(), _config(problems_per_replica=3),
                               os.path.join(self.get_temp_dir(), "one"))
    self.assertEqual((trainer.num_replicas, trainer.meta_batch), (1, 3))
    self.assertAllEqual(trainer.trajectory_index.numpy(), np.arange(3))


if __name__ == "__main__":
  tf.test.main()
