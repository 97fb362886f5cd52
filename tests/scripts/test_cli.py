"""The evaluate and meta-train command lines, run as users run them (subprocesses)."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from keras_l2o.native import library
from tests import testing_utils

_REPO = testing_utils.REPO_ROOT


def _run(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], cwd=_REPO, capture_output=True,
                        text=True, timeout=600, check=False)


class EvaluateCommandTest(tf.test.TestCase):

  def test_tiny_evaluation_writes_the_schema(self):
    out = os.path.join(self.get_temp_dir(), "eval")
    result = _run("scripts.evaluate", "--problem=quadratic",
                  "--optimizers=pretrained:l2l-quadratic,adam@0.1,sgd", "--num_problems=3",
                  "--horizon=5", "--tuning_problems=2", "--grid=0.01,0.1",
                  "--speedup_horizon_factor=2", f"--output_dir={out}")
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
      data = json.load(f)
    self.assertEqual((data["problem"], data["num_problems"], data["horizon"]), ("quadratic", 3, 5))
    self.assertEqual(list(data["optimizers"]), ["pretrained:l2l-quadratic", "adam@0.1", "sgd"])
    self.assertEqual(data["optimizers"]["adam@0.1"]["learning_rate"], 0.1)
    self.assertIn(data["optimizers"]["sgd"]["learning_rate"], (0.01, 0.1))
    self.assertIsNone(data["optimizers"]["pretrained:l2l-quadratic"]["learning_rate"])
    self.assertIn("| pretrained:l2l-quadratic | learned |", result.stdout)
    self.assertTrue(os.path.exists(os.path.join(out, "curves.png")))

  def test_unknown_optimizer_entry_is_explained(self):
    result = _run("scripts.evaluate", "--optimizers=adamw", "--output_dir=/tmp/unused")
    self.assertNotEqual(result.returncode, 0)
    self.assertIn("--optimizers entry 'adamw' is neither a baseline (sgd, momentum, nag, rmsprop, "
                  "adam, adagrad[@LEARNING_RATE]), pretrained:NAME (NAME in: gps-mnist, "
                  "gps-mnist-lstm, l2l-mnist, l2l-neural-art, l2l-quadratic, l2o-mlp-factored, "
                  "l2o-mlp-general, l2o-mlp-general-pes), nor an existing "
                  "meta-training directory or export.",
                  result.stderr)


class MetaTrainCommandTest(tf.test.TestCase):

  def test_existing_run_is_refused_without_resume_and_bad_flags_are_explained(self):
    save_dir = os.path.join(self.get_temp_dir(), "run")
    common = ["--rule=mlp", '--rule_config={"hidden_size": 2}', "--problem=quadratic",
              '--problem_config={"num_quadratics": 2}', "--num_steps=2", "--unroll_length=5",
              "--horizon=10", "--validation_every=2", "--validation_problems=1",
              f"--save_dir={save_dir}"]
    first = _run("scripts.meta_train", *common)
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    self.assertEqual(json.loads(first.stdout.strip().splitlines()[-1])["steps"], 2)
    again = _run("scripts.meta_train", *common)
    self.assertNotEqual(again.returncode, 0)
    self.assertIn(f"--save_dir={save_dir} already holds a meta-training run. Pass --resume to "
                  "continue it, or choose another --save_dir (nothing was overwritten).",
                  again.stderr)
    bad = _run("scripts.meta_train", "--rule=adam", f"--save_dir={save_dir}_2")
    self.assertIn("--rule='adam' is hand-designed: it has no meta-parameters to train. Learned "
                  "rules: general, gps_general, gps_lstm, gps_policy, learned_lr, lstm, mlp, mlp_factored.", bad.stderr)
    bad = _run("scripts.meta_train", "--problem=cifar", f"--save_dir={save_dir}_3")
    self.assertIn("is not a problem. Valid problems: conv, digits_mlp, general_tasks, "
                  "logistic_regression, mnist_mlp, neural_art, quadratic, "
                  "robust_linear_regression, two_layer_net", bad.stderr)


  def test_init_from_starts_where_the_given_run_ended(self):
    save_dir = os.path.join(self.get_temp_dir(), "first")
    common = ["--rule=mlp", '--rule_config={"hidden_size": 2}', "--problem=quadratic",
              '--problem_config={"num_quadratics": 2}', "--unroll_length=5", "--horizon=10",
              "--validation_every=2", "--validation_problems=2"]
    first = _run("scripts.meta_train", *common, "--num_steps=2", f"--save_dir={save_dir}")
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    ended = json.loads(first.stdout.strip().splitlines()[-1])
    second = _run("scripts.meta_train", *common, "--num_steps=2", f"--init_from={save_dir}",
                  f"--save_dir={save_dir}_next")
    self.assertEqual(second.returncode, 0, msg=second.stderr[-3000:])
    started = json.loads(second.stdout.strip().splitlines()[-1])
    # Its step-0 validation is the first run's last one: the same meta-parameters, same problems.
    self.assertNotEqual(ended["first_validation_loss"], ended["last_validation_loss"])
    self.assertEqual(started["first_validation_loss"], ended["last_validation_loss"])
    with open(os.path.join(f"{save_dir}_next", "config.json"), encoding="utf-8") as f:
      self.assertEqual(json.load(f)["settings"]["init_from"], save_dir)
    other = _run("scripts.meta_train", *common[:1], '--rule_config={"hidden_size": 3}',
                 *common[2:], "--num_steps=1", f"--init_from={save_dir}",
                 f"--save_dir={save_dir}_bad")
    self.assertNotEqual(other.returncode, 0)
    self.assertIn(f"--init_from={save_dir!r} holds rule 'mlp' with configuration", other.stderr)
    self.assertIn("'hidden_size': 2", other.stderr)
    gps = _run("scripts.meta_train", "--trainer=gps", "--rule=gps_lstm",
               "--problem=logistic_regression", "--init_from=pretrained:gps-mnist",
               f"--save_dir={save_dir}_gps")
    self.assertIn("--init_from: --trainer=gps always starts from its own initial policy",
                  gps.stderr)

  def test_native_kernels_flag_and_a_run_resumed_from_before_them(self):
    save_dir = os.path.join(self.get_temp_dir(), "lstm_run")
    common = ["--rule=lstm", '--rule_config={"hidden_size": 4, "num_layers": 1}',
              "--problem=quadratic", '--problem_config={"num_quadratics": 2}', "--unroll_length=5",
              "--horizon=10", "--validation_every=2", "--validation_problems=1",
              f"--save_dir={save_dir}"]
    first = _run("scripts.meta_train", *common, "--num_steps=2")
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    config_path = os.path.join(save_dir, "config.json")
    with open(config_path, encoding="utf-8") as f:
      config = json.load(f)
    self.assertEqual(config["native_kernels_used"], library.available("lstm_cells"))
    self.assertTrue(config["settings"]["native_kernels"])
    self.assertTrue(config["bptt"]["native_kernels"])
    # A run saved before the flag existed resumes on TensorFlow ops, as it started.
    del config["settings"]["native_kernels"]
    with open(config_path, "w", encoding="utf-8") as f:
      json.dump(config, f)
    resumed = _run("scripts.meta_train", f"--save_dir={save_dir}", "--resume", "--num_steps=4")
    self.assertEqual(resumed.returncode, 0, msg=resumed.stderr[-3000:])
    self.assertEqual(json.loads(resumed.stdout.strip().splitlines()[-1])["steps"], 4)
    with open(config_path, encoding="utf-8") as f:
      config = json.load(f)
    self.assertFalse(config["settings"]["native_kernels"])
    self.assertFalse(config["native_kernels_used"])
    off = _run("scripts.meta_train", *common[:-1], "--num_steps=1", "--nonative_kernels",
               f"--save_dir={save_dir}_off")
    self.assertEqual(off.returncode, 0, msg=off.stderr[-3000:])
    with open(os.path.join(f"{save_dir}_off", "config.json"), encoding="utf-8") as f:
      self.assertFalse(json.load(f)["native_kernels_used"])


_THREADING_SCRIPT = """
import json, sys
from absl import flags
from scripts import meta_train, meta_train_resume
results = []
for argv in json.loads(sys.argv[1]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["keras-l2o-meta-train", "--save_dir=unused"] + argv)
  saved = meta_train_resume.saved_settings(flags.FLAGS.save_dir) if flags.FLAGS.resume else None
  results.append(meta_train.threading_settings(saved))
print(json.dumps(results))
"""


class ThreadingTest(tf.test.TestCase):

  def test_thread_pools_follow_the_flags_the_problem_and_a_resumed_run(self):
    resumed = self.get_temp_dir()
    with open(os.path.join(resumed, "config.json"), "w", encoding="utf-8") as f:
      json.dump({"settings": {"problem": "conv", "trainer": "bptt", "intra_op_threads": 3}}, f)
    cases = [
        ["--problem=quadratic"],                       # measured faster, bit-identical: 1
        ["--problem=mnist_mlp"],
        ["--problem=conv"],                            # conv rounds differently with 1: default 0
        ["--problem=quadratic,conv"],                  # a mixture whose components disagree
        ["--problem=quadratic", "--trainer=gps"],
        ["--problem=conv", "--intra_op_threads=2", "--inter_op_threads=1"],
        [f"--save_dir={resumed}", "--resume"],         # the saved values and problem
    ]
    result = subprocess.run([sys.executable, "-c", _THREADING_SCRIPT, json.dumps(cases)],
                            cwd=_REPO, capture_output=True, text=True, timeout=300, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    got = [(r["intra_op_threads"], r["inter_op_threads"])
           for r in json.loads(result.stdout.strip().splitlines()[-1])]
    self.assertEqual(got, [(1, 0), (1, 0), (0, 0), (0, 0), (0, 0), (2, 1), (3, 0)])


if __name__ == "__main__":
  tf.test.main()
