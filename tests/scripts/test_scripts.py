"""Fast end-to-end tests of the absl scripts (benchmark and demo), in process."""

import contextlib
import io
import json
import math
import os
import re
import tempfile

from absl import flags
from absl.testing import flagsaver
import tensorflow as tf

from scripts.benchmark import command as benchmark
from scripts.benchmark import fit as benchmark_fit
from scripts import demo

FLAGS = flags.FLAGS


def _run_main(module, argv):
  """Parses `argv` into the global flags and runs `module.main`; returns stdout."""
  stdout = io.StringIO()
  with flagsaver.flagsaver():
    remaining = FLAGS(argv)
    with contextlib.redirect_stdout(stdout):
      module.main(remaining)
  return stdout.getvalue()


def _temp_dir(test_case):
  # Not create_tempdir(): it reads --test_tmpdir, unparsed when pytest runs this first.
  tmp = tempfile.TemporaryDirectory()
  test_case.addCleanup(tmp.cleanup)
  return tmp.name


def _positive_finite(x):
  return isinstance(x, float) and math.isfinite(x) and x > 0


class BenchmarkScriptTest(tf.test.TestCase):

  def test_quick_run_writes_json_and_markdown(self):
    out = _temp_dir(self)
    stdout = _run_main(benchmark, [
        "keras-l2o-benchmark", "--quick", "--sizes=10k", "--steps=5", "--warmup=2",
        "--rules=sgd,mlp", "--update_repeats=3", f"--output_dir={out}"])

    with open(os.path.join(out, "benchmark_results.json"), encoding="utf-8") as f:
      report = json.load(f)
    for key in ("command", "machine", "config", "optimizers", "fit", "update",
                "memory_measured", "memory_note", "total_seconds"):
      self.assertIn(key, report)
    self.assertGreaterEqual(report["machine"]["cpu_count"], 1)
    self.assertEqual(report["machine"]["tensorflow"], tf.__version__)
    self.assertFalse(report["memory_measured"])
    self.assertIn("--rules=sgd,mlp", report["command"])
    self.assertEqual(report["optimizers"]["keras.Adam"]["state_floats_per_parameter"], 2)
    self.assertEqual(report["optimizers"]["sgd"]["state_floats_per_parameter"], 0)
    self.assertEqual(report["optimizers"]["mlp"]["state_floats_per_parameter"], 3)

    fit = {r["optimizer"]: r for r in report["fit"]}
    self.assertCountEqual(fit, ["keras.Adam", "sgd", "mlp"])
    for name, r in fit.items():
      self.assertEqual(r["size"], "10k")
      self.assertBetween(r["params"], 9_000, 11_000)
      self.assertEqual(r["steps_measured"], 5)
      self.assertFalse(r["jit"])
      for key in ("median_ms", "p10_ms", "p90_ms", "ratio_to_adam"):
        self.assertTrue(_positive_finite(r[key]), f"{name} {key}={r[key]!r}")
      self.assertLessEqual(r["p10_ms"], r["median_ms"])
      self.assertLessEqual(r["median_ms"], r["p90_ms"])
      self.assertTrue(math.isfinite(r["final_loss"]))
    self.assertAlmostEqual(fit["keras.Adam"]["ratio_to_adam"], 1.0)

    update = {r["optimizer"]: r for r in report["update"]}
    self.assertCountEqual(update, ["keras.Adam", "sgd", "mlp"])
    for name, r in update.items():
      self.assertEqual(r["params"], 10_000)
      self.assertTrue(_positive_finite(r["median_ns_per_param"]), name)
      self.assertTrue(_positive_finite(r["ratio_to_adam"]), name)

    # The markdown table: printed, saved, one row per optimizer with numbers.
    with open(os.path.join(out, "benchmark.md"), encoding="utf-8") as f:
      markdown = f.read()
    self.assertIn(markdown.strip(), stdout)
    self.assertIn("TensorFlow " + tf.__version__, markdown)
    self.assertIn("Command: `", markdown)
    for name in ("keras.Adam", "sgd", "mlp"):
      row = next(line for line in markdown.splitlines() if line.startswith(f"| `{name}` |"))
      numbers = [float(x) for x in re.findall(r"\d+\.\d+", row)]
      self.assertTrue(numbers and all(math.isfinite(x) and x > 0 for x in numbers), row)

  def test_invalid_flags_have_clear_messages(self):
    with flagsaver.flagsaver():
      with self.assertRaisesRegex(flags.IllegalFlagValueError,
                                  r"Valid rules: adagrad, adam, general, gps_general, learned_lr, lstm"):
        FLAGS(["keras-l2o-benchmark", "--rules=sgd,nope"])
    with flagsaver.flagsaver():
      with self.assertRaisesRegex(flags.IllegalFlagValueError, r"Unknown size 'huge'"):
        FLAGS(["keras-l2o-benchmark", "--sizes=10k,huge"])

  def test_size_parsing_and_model_width(self):
    from scripts import flags as script_flags  # pylint: disable=g-import-not-at-top
    self.assertEqual(script_flags.parse_sizes("10k,100k,1M,10M"),
                     [("10k", 10_000), ("100k", 100_000), ("1M", 1_000_000),
                      ("10M", 10_000_000)])
    for target in (10_000, 100_000, 1_000_000, 10_000_000):
      params = benchmark_fit.mlp_params(benchmark_fit.hidden_width(target))
      self.assertLess(abs(params - target) / target, 0.02)


class DemoScriptTest(tf.test.TestCase):

  def test_tiny_demo_runs_all_three_stages(self):
    out = _temp_dir(self)
    stdout = _run_main(demo, ["demo", "--epochs=1", "--meta_steps=3", "--num_problems=4",
                              f"--output_dir={out}", "--seed=0"])
    self.assertIn("1. Meta-trained an lstm optimizer on quadratics for 3 steps", stdout)
    # Stage 2: the quadratic table with the learned optimizer and the six tuned baselines.
    with open(os.path.join(out, "quadratic", "results.json"), encoding="utf-8") as f:
      quad = json.load(f)
    self.assertEqual(quad["num_problems"], 4)
    self.assertEqual(set(quad["optimizers"]), {"lstm (meta-trained by the demo)", "sgd",
                                               "momentum", "nag", "rmsprop", "adam",
                                               "adagrad"})
    for name, entry in quad["optimizers"].items():
      self.assertTrue(math.isfinite(entry["sum_loss_mean"]), name)
      self.assertIn(f"| {name} |", stdout)
    self.assertGreater(os.path.getsize(os.path.join(out, "quadratic", "curves.png")), 10_000)
    # Stage 3: digits, tuned Adam next to the pretrained default (at its rate, then on the
    # schedule over the run's 1 epoch x 43 batches), l2o-mlp-factored, gps-mnist.
    with open(os.path.join(out, "digits", "results.json"), encoding="utf-8") as f:
      digits = json.load(f)
    self.assertLen(digits["results"], 5)
    self.assertEqual("keras_l2o.pretrained.get(num_training_steps=43)",
                     digits["results"][2]["optimizer"])
    self.assertIn('pretrained.get("l2o-mlp-factored")', digits["results"][3]["optimizer"])
    self.assertIn('pretrained.get("gps-mnist")', digits["results"][4]["optimizer"])
    self.assertIn(digits["results"][0]["optimizer"].split(" ")[0].split("(")[1].rstrip(")"),
                  [f"{lr:g}" for lr in digits["adam_grid"]])
    for r in digits["results"]:
      self.assertLen(r["train_loss_per_epoch"], 2)
      self.assertLess(r["final_train_loss"], r["initial_train_loss"])
      self.assertBetween(r["test_accuracy"], 0.0, 1.0)
    self.assertTrue(os.path.exists(os.path.join(out, "digits", "curves.png")))


if __name__ == "__main__":
  tf.test.main()
