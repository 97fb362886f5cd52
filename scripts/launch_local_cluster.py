r"""Runs a multi-process meta-training cluster on this machine (127.0.0.1).

Usage:
  # 2 workers, synchronous (MultiWorkerMirroredStrategy): every worker trains,
  # meta-gradients are all-reduced, worker 0 writes --save_dir.
  python -m scripts.launch_local_cluster --num_workers=2 -- \
      --problem=quadratic --num_steps=200 --save_dir=/tmp/mw

  # 2 workers + 1 parameter server + a chief (ParameterServerStrategy):
  # asynchronous meta-training scheduled by a ClusterCoordinator on the chief.
  python -m scripts.launch_local_cluster --num_workers=2 --num_ps=1 -- \
      --problem=quadratic --num_steps=200 --save_dir=/tmp/ps

Everything after `--` goes to `keras-l2o-meta-train` (`scripts.meta_train`);
the launcher adds `--strategy` and gives every process its `TF_CONFIG` with
free loopback ports. It is a test and development tool: on real machines, start
the same command on each host with its own `TF_CONFIG` (docs/DISTRIBUTED.md).

The launcher writes one log per process and `pids.json` into `--cluster_log_dir`,
bounds the whole run by `--timeout`, and stops every process (SIGTERM, then
SIGKILL, by process group) when it ends. If any process dies (or, in a
parameter-server cluster, a server exits at all) it stops the others and exits
with status 1 and a message naming the process, its exit code and the end of
its log, within a second or two of the death.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

flags.DEFINE_integer("num_workers", 2, "Worker processes.", lower_bound=1)
flags.DEFINE_integer("num_ps", 0, "Parameter-server processes; > 0 runs ParameterServerStrategy "
                     "with an extra chief process, 0 runs MultiWorkerMirroredStrategy.",
                     lower_bound=0)
flags.DEFINE_float("timeout", 1800.0, "Seconds after which the whole cluster is stopped and the "
                   "launcher fails.", lower_bound=1.0)
flags.DEFINE_string("cluster_log_dir", None, "Directory for the per-process logs and pids.json "
                    "(default: a new temporary directory).")
flags.DEFINE_float("poll_seconds", 0.25, "How often the processes are checked.", lower_bound=0.01)

FLAGS = flags.FLAGS

_STOP_GRACE_SECONDS = 5.0
_LOG_TAIL_CHARS = 3000


def free_ports(count: int) -> list:
  """`count` distinct TCP ports that were free on 127.0.0.1 a moment ago."""
  sockets, ports = [], []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(("127.0.0.1", 0))
      sockets.append(s)
      ports.append(s.getsockname()[1])
  finally:
    for s in sockets:
      s.close()
  return ports


def cluster_tasks(num_workers: int, num_ps: int) -> tuple:
  """`(cluster, tasks)`: the cluster spec and the (job, index) of every process.

  Without parameter servers the cluster has only workers; with them it also
  has one chief (the coordinator that runs the training).
  """
  jobs = [("worker", num_workers)]
  if num_ps:
    jobs = [("chief", 1)] + jobs + [("ps", num_ps)]
  ports = iter(free_ports(sum(n for _, n in jobs)))
  cluster = {job: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for job, n in jobs}
  tasks = [(job, i) for job, n in jobs for i in range(n)]
  return cluster, tasks


def _tail(path: str) -> str:
  try:
    with open(path, encoding="utf-8", errors="replace") as f:
      return f.read()[-_LOG_TAIL_CHARS:]
  except OSError:
    return "(no log)"


def stop(processes: dict):
  """SIGTERM every live process group, then SIGKILL what is left."""
  for process in processes.values():
    if process.poll() is None:
      try:
        os.killpg(process.pid, signal.SIGTERM)
      except ProcessLookupError:
        pass
  deadline = time.monotonic() + _STOP_GRACE_SECONDS
  for process in processes.values():
    try:
      process.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
      pass
  for process in processes.values():
    if process.poll() is None:
      try:
        os.killpg(process.pid, signal.SIGKILL)
      except ProcessLookupError:
        pass
      process.wait()


def launch(num_workers: int, num_ps: int, meta_train_args: list, log_dir: str,
           timeout: float, poll_seconds: float = 0.25) -> int:
  """Starts the cluster, watches it, stops it. Returns the exit status (0: success)."""
  os.makedirs(log_dir, exist_ok=True)
  cluster, tasks = cluster_tasks(num_workers, num_ps)
  strategy = "parameter_server" if num_ps else "multi_worker"
  args = list(meta_train_args)
  if not any(a.startswith("--strategy") for a in args):
    args.append(f"--strategy={strategy}")
  trainer_task = ("chief", 0) if num_ps else ("worker", 0)
  processes, logs, started = {}, {}, time.monotonic()

  def handle_signal(signum, frame):
    del frame
    stop(processes)
    sys.exit(128 + signum)

  signal.signal(signal.SIGTERM, handle_signal)
  try:
    for job, index in tasks:
      env = dict(os.environ, TF_CONFIG=json.dumps(
          {"cluster": cluster, "task": {"type": job, "index": index}}))
      name = f"{job}{index}"
      logs[name] = os.path.join(log_dir, f"{name}.log")
      with open(logs[name], "w", encoding="utf-8") as log:
        processes[name] = subprocess.Popen(
            [sys.executable, "-m", f"{__package__}.meta_train"] + args, env=env, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(log_dir, "pids.json"), "w", encoding="utf-8") as f:
      json.dump({name: p.pid for name, p in processes.items()}, f)
    print(f"Started {', '.join(f'{n} (pid {p.pid})' for n, p in processes.items())}; "
          f"TF_CONFIG cluster {json.dumps(cluster)}; logs in {log_dir}", flush=True)
    trainer_name = f"{trainer_task[0]}{trainer_task[1]}"
    trainers = [n for n in processes if n.startswith("worker")] if not num_ps else [trainer_name]
    while True:
      elapsed = time.monotonic() - started
      for name, process in processes.items():
        code = process.poll()
        dead = code is not None and (code != 0 or name not in trainers)
        if dead:
          print(f"FAILED: {name} (pid {process.pid}) exited with code {code} after "
                f"{elapsed:.1f} s; stopping the cluster. Last lines of {logs[name]}:\n"
                f"{_tail(logs[name])}", file=sys.stderr, flush=True)
          return 1
      if all(processes[n].poll() == 0 for n in trainers):
        print(f"Finished in {elapsed:.1f} s; logs in {log_dir}", flush=True)
        print(_tail(logs[trainer_name]).strip().splitlines()[-1], flush=True)
        return 0
      if elapsed > timeout:
        print(f"FAILED: timeout after {timeout:.0f} s; stopping the cluster. Logs in {log_dir}",
              file=sys.stderr, flush=True)
        return 2
      time.sleep(poll_seconds)
  finally:
    stop(processes)


def main(argv):
  meta_train_args = argv[1:]
  if not any(a.startswith("--save_dir") for a in meta_train_args):
    raise app.UsageError("Give the meta-training flags after `--`, including --save_dir. "
                         f"Received: {meta_train_args}")
  log_dir = FLAGS.cluster_log_dir or tempfile.mkdtemp(prefix="keras_l2o_cluster_")
  sys.exit(launch(FLAGS.num_workers, FLAGS.num_ps, meta_train_args, log_dir, FLAGS.timeout,
                  FLAGS.poll_seconds))


if __name__ == "__main__":
  app.run(main)
