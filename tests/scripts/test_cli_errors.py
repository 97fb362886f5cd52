"""The command lines' mistakes: one line, a non-zero exit, no traceback, nothing written.

Each script's cases run in one subprocess (its flags are module-level, and
importing TensorFlow costs seconds): `_DRIVER` parses each argv and calls the
script's `main` as `scripts.cli.run` does, recording the error text. One real
command line checks the whole path: the one-line stderr and exit code 1.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import tensorflow as tf

from tests import testing_utils

_REPO = testing_utils.REPO_ROOT

# A case is an argv (a list), or {"write": path, "text": ...} to change a file between cases.
_DRIVER = r"""
import importlib, json, sys
from absl import app, flags
module = importlib.import_module(sys.argv[1])
results = []
for case in json.loads(sys.argv[2]):
  if isinstance(case, dict):
    with open(case["write"], case.get("mode", "w"), encoding="utf-8") as f:
      f.write(case["text"])
    continue
  flags.FLAGS.unparse_flags()
  try:
    module.main(flags.FLAGS([sys.argv[1]] + case))
    results.append("OK")
  except (flags.Error, app.UsageError) as e:
    results.append(" ".join(str(e).split()))
print(json.dumps(results))
"""

_TINY = ["--rule=mlp", '--rule_config={"hidden_size": 2}', "--problem=quadratic",
         '--problem_config={"num_quadratics": 2}', "--num_steps=2", "--unroll_length=5",
         "--horizon=10", "--validation_every=2", "--validation_problems=1"]
_KEEP = ("only --num_steps, --patience, --log_every, --checkpoint_every, --intra_op_threads, "
         "--inter_op_threads may change. Drop the flag, or start a new run in another --save_dir.")


def _drive(module, cases):
  result = subprocess.run([sys.executable, "-c", _DRIVER, module, json.dumps(cases)], cwd=_REPO,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


class CliErrorsTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.root = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
    self.file = os.path.join(self.root, "a_file")
    with open(self.file, "w", encoding="utf-8") as f:
      f.write("not a directory")

  def test_meta_train(self):
    run, fresh = os.path.join(self.root, "run"), os.path.join(self.root, "fresh")
    config = os.path.join(run, "config.json")
    cases = [
        _TINY,
        [*_TINY, f"--save_dir={self.file}"],
        [*_TINY, f"--save_dir={self.file}/run"],
        [*_TINY, f"--save_dir={fresh}", "--horizon=0"],
        [*_TINY, f"--save_dir={fresh}", "--num_steps=-1"],
        [*_TINY, f"--save_dir={fresh}", "--learning_rate=nan"],
        [*_TINY, f"--save_dir={fresh}", "--meta_learning_rate=inf"],
        [f"--save_dir={fresh}", "--resume"],
        [*_TINY, f"--save_dir={run}"],                          # a real 2-step run
        [f"--save_dir={run}", "--resume", "--rule=lstm"],
        [f"--save_dir={run}", "--resume", "--seed=5"],
        [f"--save_dir={run}", "--resume", '--problem_config={"num_quadratics": 3}'],
        [*_TINY, f"--save_dir={run}", "--resume", "--num_steps=3"],  # same flags, longer: fine
        {"write": os.path.join(run, "metrics.jsonl"), "mode": "a", "text": "oops\n{}\n"},
        [f"--save_dir={run}", "--resume", "--num_steps=4"],
        {"write": config, "text": '{"format": "keras_l2o.meta_train", "settings": {'},
        [f"--save_dir={run}", "--resume", "--num_steps=4"],
    ]
    results = _drive("scripts.meta_train", cases)
    self.assertEqual(results, [
        "flag --save_dir=None: Flag --save_dir must have a value other than None.",
        f"--save_dir={self.file} is a file, not a directory.",
        f"--save_dir={self.file}/run cannot be written: Not a directory.",
        "flag --horizon=0: 0 is not a positive integer",
        "flag --num_steps=-1: -1 is not a positive integer",
        "flag --learning_rate=nan: --learning_rate must be a finite number > 0. Received: nan",
        "flag --meta_learning_rate=inf: --meta_learning_rate must be a finite number > 0. "
        "Received: inf",
        f"--resume: --save_dir={fresh} does not exist; there is nothing to resume (drop --resume "
        "to start a new run).",
        "OK",
        f"--rule=lstm conflicts with the run in {run}, which was started with --rule=mlp. A "
        f"resumed run keeps its settings; {_KEEP}",
        f"--seed=5 conflicts with the run in {run}, which was started with --seed=0. A resumed "
        f"run keeps its settings; {_KEEP}",
        '--problem_config={"num_quadratics": 3} conflicts with the run in '
        f'{run}, which was started with --problem_config={{"num_quadratics": 2, "seed": 0}}. A '
        f"resumed run keeps its settings; {_KEEP}",
        "OK",
        f"Line 4 of {run}/metrics.jsonl is not a metrics record (Expecting value: line 1 column 1 "
        "(char 0)): 'oops'. Delete that line to resume the run.",
        f"--resume: The run's config.json ({config}) is not valid JSON (Expecting property name "
        "enclosed in double quotes: line 1 column 49 (char 48)); it was damaged after the run "
        "wrote it.",
    ])
    self.assertFalse(os.path.exists(fresh))  # refused before anything was written
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
      self.assertEqual([json.loads(line)["step"] for line in f.readlines()[:3]], [0, 2, 3])

  def test_evaluate_and_export(self):
    out = os.path.join(self.root, "eval")
    os.makedirs(out)
    with open(os.path.join(out, "results.json"), "w", encoding="utf-8") as f:
      f.write("{}")
    fast = ["--problem=quadratic", "--num_problems=2", "--horizon=5", "--tuning_problems=1"]
    cases = [[*fast, f"--optimizers=adam@{rate}", f"--output_dir={self.root}/e"]
             for rate in ("nan", "-1", "inf", "0", "fast")]
    cases += [
        [*fast, "--optimizers=adam@0.1", f"--output_dir={self.file}"],
        [*fast, "--optimizers=adam@0.1", f"--output_dir={self.file}/sub"],
        [*fast, "--optimizers=adam@0.1", f"--output_dir={out}"],
        [*fast, "--optimizers=adam@0.1", "--horizon=0", f"--output_dir={out}"],
        [*fast, "--optimizers=sgd", "--grid=0.1,nan", f"--output_dir={out}"],
        ["--optimizers=sgd"],
    ]
    entry = "--optimizers entry 'adam@{}': the learning rate must be a finite number > 0. " \
            "Received: '{}'"
    self.assertEqual(_drive("scripts.evaluate", cases), [
        entry.format("nan", "nan"), entry.format("-1", "-1"), entry.format("inf", "inf"),
        entry.format("0", "0"), "--optimizers entry 'adam@fast': 'fast' is not a number.",
        f"--output_dir={self.file} is a file, not a directory.",
        f"--output_dir={self.file}/sub cannot be written: Not a directory.",
        f"--output_dir={out} already holds results.json; pass --overwrite to replace them "
        "(nothing was written).",
        "flag --horizon=0: 0 is not a positive integer",
        "--grid learning rates must be finite numbers > 0. Received: '0.1,nan'",
        "flag --output_dir=None: Flag --output_dir must have a value other than None.",
    ])
    self.assertFalse(os.path.exists(os.path.join(self.root, "e")))
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
      self.assertEqual(f.read(), "{}")
    export = os.path.join(self.root, "export")
    self.assertEqual(_drive("scripts.export_saved_model", [
        [f"--source={self.root}/missing", f"--output_dir={export}"],
        [f"--source={self.file}", f"--output_dir={export}"],
        ["--rule=mlp", "--learning_rate=inf", f"--output_dir={export}"],
        ["--rule=mlp", f"--output_dir={self.file}"],
    ]), [
        f"--source={self.root}/missing does not exist.",
        f"--source={self.file}: {self._load_error(self.file)}",
        "flag --learning_rate=inf: --learning_rate must be a finite number > 0. Received: inf",
        f"--output_dir={self.file} is a file, not a directory.",
    ])
    self.assertFalse(os.path.exists(export))

  def _load_error(self, path):
    import keras_l2o  # pylint: disable=g-import-not-at-top
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.load(path)
    return " ".join(str(ctx.exception).split())

  def test_a_locked_run_directory_is_one_line_and_exit_1(self):
    save_dir = os.path.join(self.root, "busy")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, json, os, sys; os.makedirs(sys.argv[1]); "
         "f = open(os.path.join(sys.argv[1], 'run.lock'), 'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); json.dump({'pid': os.getpid(), 'host': 'h'}, f); "
         "f.flush(); print('locked', flush=True); sys.stdin.readline()", save_dir],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    self.addCleanup(holder.kill)
    self.assertEqual(holder.stdout.readline().strip(), "locked")
    result = subprocess.run([sys.executable, "-m", "scripts.meta_train", *_TINY,
                             f"--save_dir={save_dir}"], cwd=_REPO, capture_output=True,
                            text=True, timeout=600, check=False)
    holder.communicate("\n", timeout=30)
    self.assertEqual(result.returncode, 1)
    self.assertNotIn("Traceback", result.stderr)
    self.assertEqual(result.stderr.strip().splitlines()[-1],
                     f"keras-l2o-meta-train: error: The run directory {save_dir} is in use by "
                     f"process {holder.pid} on host h: one process writes a run at a time. Wait "
                     "for it to finish, or stop it and pass --resume.")
    self.assertEqual(sorted(os.listdir(save_dir)), ["run.lock"])


if __name__ == "__main__":
  tf.test.main()
