"""A tiny run of every section of scripts/benchmark/: the JSON and markdown carry the numbers."""

import contextlib
import io
import json
import math
import os
import tempfile
from unittest import mock

from absl import flags
from absl.testing import flagsaver
import tensorflow as tf

import keras_l2o
from keras_l2o.native import lstm_cells
from keras_l2o.native import lstm_rule as native_lstm

from scripts.benchmark import command
from scripts.benchmark import meta_training
from scripts.benchmark import optimizers
from scripts.benchmark import subprocess_runner
from scripts.benchmark import update

FLAGS = flags.FLAGS
# 64-32-64-128 convolutions of 3x3 plus the 128 -> 10 dense layer, with biases.
CONV_PARAMS = (9 * 1 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 128 + 128) + (128 * 10 + 10)
# The mlp rule's matmuls per coordinate: features 3 -> hidden 16, 3 -> 1 (skip), 16 -> 1.
MLP_MATMUL_FLOPS = 2 * (3 * 16 + 3 * 1 + 16 * 1)


def _positive(x):
  return isinstance(x, float) and math.isfinite(x) and x > 0


class BenchmarkSectionsTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._tmp = tempfile.TemporaryDirectory()
    stdout = io.StringIO()
    argv = ["keras-l2o-benchmark", "--quick", "--rules=mlp", "--sizes=10k", "--steps=3",
            "--warmup=1", "--conv", "--flops", "--bptt_steps=2", "--bptt_warmup=1",
            "--update_repeats=2", "--max_state_gb=0.0001", f"--output_dir={cls._tmp.name}"]
    with flagsaver.flagsaver():
      remaining = FLAGS(argv)
      with contextlib.redirect_stdout(stdout):
        command.main(remaining)
    cls.stdout = stdout.getvalue()
    with open(os.path.join(cls._tmp.name, "benchmark_results.json"), encoding="utf-8") as f:
      cls.report = json.load(f)
    with open(os.path.join(cls._tmp.name, "benchmark.md"), encoding="utf-8") as f:
      cls.markdown = f.read()

  @classmethod
  def tearDownClass(cls):
    cls._tmp.cleanup()
    super().tearDownClass()

  def test_state_limit_skips_and_conv_net_is_timed(self):
    # mlp keeps 3 floats per parameter: 120 kB at 10k > 0.0001 GB; Adam's 80 kB fit.
    self.assertEqual(self.report["skipped_fit_reasons"],
                     [["mlp", "10k", False, "state 0.00012 GB > --max_state_gb=0.0001"]])
    fit = {(r["optimizer"], r["size"]): r for r in self.report["fit"]}
    self.assertCountEqual(fit, [("keras.Adam", "10k"), ("keras.Adam", "conv"), ("mlp", "conv")])
    for (name, size), r in fit.items():
      self.assertEqual(r["params"], CONV_PARAMS if size == "conv" else 10_015, name)
      self.assertEqual(r["model"], "conv" if size == "conv" else "mlp")
      self.assertEqual(r["steps_measured"], 3)
      self.assertTrue(_positive(r["median_ms"]) and _positive(r["ratio_to_adam"]), r)
    self.assertIn("| `mlp` | skipped | n/a |", self.markdown)

  def test_update_alone_has_both_paths(self):
    update = {r["optimizer"]: r for r in self.report["update"]}
    self.assertCountEqual(update, ["keras.Adam", "mlp"])
    self.assertEqual(update["mlp"]["jit_rule"], "auto")
    (reference,) = self.report["update_reference_path"]
    self.assertEqual((reference["optimizer"], reference["jit_rule"]), ("mlp", False))
    for r in list(update.values()) + [reference]:
      self.assertEqual(r["params"], 10_000)
      self.assertTrue(_positive(r["median_ns_per_param"]), r)
    self.assertTrue(self.report["optimizers"]["mlp"]["fast_path"])
    self.assertFalse(self.report["optimizers"]["keras.Adam"]["fast_path"])
    # The path each measurement took, seen from inside its trace (10,000 >= AUTO_MIN_SIZE).
    self.assertEqual((update["mlp"]["path"], update["keras.Adam"]["path"]), ("xla", "keras"))
    self.assertEqual(reference["path"], "reference")
    self.assertIn("(xla) |", self.markdown)

  def test_update_of_the_lstm_rule_names_the_native_kernel(self):
    built = native_lstm.supports(keras_l2o.rules.get("lstm"), tf.float32)
    self.assertEqual(optimizers.has_fast_path("lstm"), True)  # the native kernel or the blocked XLA form
    plain = update.update_benchmark("lstm", 1000, repeats=2, jit=False, seed=0)
    compiled = update.update_benchmark("lstm", 1000, repeats=2, jit=True, seed=0)
    self.assertEqual(plain["path"], "native" if built else "reference")
    self.assertEqual(compiled["path"], "reference")  # XLA cannot compile the kernel
    self.assertTrue(_positive(plain["median_ns_per_param"]), plain)

  def test_flop_counts_and_bounds(self):
    flops = self.report["flops"]
    rate = flops["matmul"]["best_gflops"]
    self.assertGreater(rate, 1.0)
    self.assertGreaterEqual(rate, flops["matmul"]["median_gflops"])
    entries = {e["optimizer"]: e for e in flops["rules"]}
    self.assertEqual(entries["mlp"]["matmul_flops_per_coordinate"], MLP_MATMUL_FLOPS)
    self.assertBetween(entries["mlp"]["flops_per_coordinate"], MLP_MATMUL_FLOPS + 20,
                       MLP_MATMUL_FLOPS + 60)
    # keras.Adam is counted as the adam rule: no matmul, about 11 arithmetic ops, plus the clips of
    # g and g^2 that keep its moving averages finite after a huge gradient (issue 20): 14 measured.
    self.assertEqual(entries["keras.Adam"]["matmul_flops_per_coordinate"], 0)
    self.assertBetween(entries["keras.Adam"]["flops_per_coordinate"], 8, 17)
    bandwidth = flops["memory"]["best_gb_per_s"]
    self.assertGreater(bandwidth, 0.1)
    self.assertGreaterEqual(bandwidth, flops["memory"]["median_gb_per_s"])
    # Bytes per coordinate: 4 x (state and variable read and written + gradient read).
    self.assertEqual(entries["mlp"]["bytes_per_coordinate"], 4 * (2 * 3 + 3))
    self.assertEqual(entries["keras.Adam"]["bytes_per_coordinate"], 4 * (2 * 2 + 3))
    for e in entries.values():
      self.assertAlmostEqual(e["bound_ns_per_param"], e["flops_per_coordinate"] / rate)
      self.assertAlmostEqual(e["times_bound"], e["update_ns_per_param"] / e["bound_ns_per_param"])
      self.assertAlmostEqual(e["memory_bound_ns_per_param"], e["bytes_per_coordinate"] / bandwidth)
      self.assertAlmostEqual(e["times_roofline"], e["update_ns_per_param"] / max(
          e["bound_ns_per_param"], e["memory_bound_ns_per_param"]))
    self.assertIn("Measured memory bandwidth:", self.markdown)

  def test_bptt_throughput(self):
    bptt = self.report["bptt"]
    self.assertEqual(bptt["setup"]["unroll_length"], 20)
    self.assertEqual(bptt["setup"]["problem_config"], {"num_quadratics": 128})
    (r,) = bptt["results"]  # mlp has no native kernel: one run, on TensorFlow ops
    self.assertEqual((r["rule"], r["native_kernels"], r["meta_steps"]), ("mlp", False, 2))
    self.assertAlmostEqual(r["inner_steps_per_second"], 20 * r["meta_steps_per_second"])
    self.assertAlmostEqual(r["meta_steps_per_second"], 2 / r["seconds"])
    self.assertTrue(_positive(r["inner_steps_per_second"]), r)
    # What a run costs once (restore, last save, export) is timed and not counted.
    self.assertTrue(_positive(r["run_overhead_seconds"]), r)
    # In its own process, with meta_train's thread pools for the quadratic problem.
    self.assertEqual(r["threads"], {"intra_op_threads": 1, "inter_op_threads": 0})
    self.assertIn("| `mlp` | TensorFlow | 1, 0 | ", self.markdown)

  def test_bptt_variants(self):
    # run_child stubbed: what matters here is which configurations run, and that a
    # failing one is recorded with its error instead of ending the benchmark.
    lstm_rule = keras_l2o.rules.get("lstm")
    has_native = lstm_cells.for_meta_training(lstm_rule) is not lstm_rule
    specs = []

    def fake_child(spec):
      specs.append(spec)
      if spec["rule"] == "mlp":
        raise RuntimeError("Subprocess for BPTT with mlp failed (exit code 1):\nboom")
      native = spec["native_kernels"] and has_native
      return {"rule": spec["rule"], "native_kernels": native,
              "inner_steps_per_second": 250.0 if native else 160.0}

    with mock.patch.object(subprocess_runner, "run_child", fake_child):
      section = meta_training.bptt_section(["lstm", "mlp", "sgd"], steps=2, warmup=1, seed=0)
    variants = [(s["rule"], s["native_kernels"]) for s in specs]
    lstm = [("lstm", True), ("lstm", False)] if has_native else [("lstm", True)]
    self.assertEqual(variants, lstm + [("mlp", True)])  # sgd is not learned: not meta-trained
    self.assertEqual({(s["steps"], s["warmup"], s["seed"]) for s in specs}, {(2, 1, 0)})
    self.assertEqual(section["results"][-1],
                     {"rule": "mlp", "native_kernels": True,
                      "error": "RuntimeError: Subprocess for BPTT with mlp failed (exit code "
                               "1):\nboom"})
    self.assertEqual([r["inner_steps_per_second"] for r in section["results"][:-1]],
                     [250.0, 160.0] if has_native else [160.0])

  def test_markdown_has_every_section(self):
    self.assertIn(self.markdown.strip(), self.stdout)
    for heading in ("## model.fit step time, jit_compile=False",
                    "## The update alone (`optimizer.apply` on one 10,000-parameter variable)",
                    "## Flops per coordinate and the flop bound",
                    "## BPTT meta-training throughput (quadratic setup)"):
      self.assertIn(heading, self.markdown)
    self.assertNotIn("Targets", self.markdown)  # no targets of an old issue, no "previous" code
    self.assertNotIn("previous", self.markdown)


if __name__ == "__main__":
  tf.test.main()
