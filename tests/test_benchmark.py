"""A tiny run of every section of scripts/benchmark.py: the JSON and markdown carry the numbers."""

import contextlib
import io
import json
import math
import os
import tempfile
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl.testing import flagsaver  # pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

import keras_l2o  # pylint: disable=g-import-not-at-top,wrong-import-position
from keras_l2o.native import lstm_cells  # pylint: disable=g-import-not-at-top,wrong-import-position
from keras_l2o.native import lstm_rule as native_lstm  # pylint: disable=g-import-not-at-top,wrong-import-position

from scripts import benchmark  # pylint: disable=g-import-not-at-top,wrong-import-position

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
        benchmark.main(remaining)
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
    self.assertEqual(benchmark.has_fast_path("lstm"), True)  # the native kernel or the blocked XLA form
    plain = benchmark.update_benchmark("lstm", 1000, repeats=2, jit=False, seed=0)
    compiled = benchmark.update_benchmark("lstm", 1000, repeats=2, jit=True, seed=0)
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

  def test_bptt_throughput_against_the_previous_meta_update(self):
    bptt = self.report["bptt"]
    self.assertEqual(bptt["setup"]["unroll_length"], 20)
    self.assertEqual(bptt["setup"]["problem_config"], {"num_quadratics": 128})
    results = {r["eager_meta_update"]: r for r in bptt["results"]}
    self.assertCountEqual(results, [False, True])
    for r in results.values():
      self.assertEqual(r["rule"], "mlp")
      self.assertEqual(r["meta_steps"], 2)
      self.assertAlmostEqual(r["inner_steps_per_second"], 20 * r["meta_steps_per_second"])
      self.assertTrue(_positive(r["inner_steps_per_second"]), r)
    self.assertAlmostEqual(results[False]["speedup_over_previous"],
                           results[False]["inner_steps_per_second"]
                           / results[True]["inner_steps_per_second"])
    # Each in its own process: meta_train's thread pools for the quadratic problem, and
    # TensorFlow's defaults for the previous version.
    self.assertEqual(results[False]["threads"], {"intra_op_threads": 1, "inter_op_threads": 0})
    self.assertEqual(results[True]["threads"], {"intra_op_threads": 0, "inter_op_threads": 0})
    # The traced meta-update and the thread pools change no number.
    self.assertEqual(results[False]["meta_params_sha"], results[True]["meta_params_sha"])
    self.assertTrue(bptt["identical_to_previous"])

  def test_bptt_variants_and_which_runs_must_keep_the_numbers(self):
    # _run_child stubbed: what matters here is which configurations run and how the
    # section compares them. Runs on TensorFlow ops must keep the previous code's
    # meta-parameters; a native-kernel run may differ by rounding.
    lstm_rule = keras_l2o.rules.get("lstm")
    has_native = lstm_cells.for_meta_training(lstm_rule) is not lstm_rule
    specs = []

    def fake_child(spec, tf_sha="tf"):
      specs.append(spec)
      native = spec["native_kernels"] and spec["rule"] == "lstm" and has_native
      speed = 100.0 if spec["eager_meta_update"] else (250.0 if native else 160.0)
      return {"rule": spec["rule"], "eager_meta_update": spec["eager_meta_update"],
              "native_kernels": native, "inner_steps_per_second": speed,
              "meta_params_sha": "native" if native else tf_sha}

    with flagsaver.flagsaver(bptt_steps=2, bptt_warmup=1, seed=0), \
        mock.patch.object(benchmark, "_run_child", fake_child):
      section = benchmark._bptt_section(["lstm", "mlp", "sgd"])  # pylint: disable=protected-access
    variants = [(s["rule"], s["eager_meta_update"], s["native_kernels"]) for s in specs]
    lstm = ([("lstm", False, True), ("lstm", False, False), ("lstm", True, False)] if has_native
            else [("lstm", False, True), ("lstm", True, False)])
    self.assertEqual(variants, lstm + [("mlp", False, True), ("mlp", True, False)])
    results = {(r["rule"], r["eager_meta_update"], r["native_kernels"]): r
               for r in section["results"]}
    self.assertTrue(section["identical_to_previous"])  # the native run's other SHA is allowed
    if has_native:
      native = results[("lstm", False, True)]
      self.assertAlmostEqual(native["speedup_over_previous"], 2.5)
      self.assertFalse(native["identical_to_previous"])
    self.assertAlmostEqual(results[("mlp", False, False)]["speedup_over_previous"], 1.6)
    self.assertTrue(results[("mlp", False, False)]["identical_to_previous"])
    # A run on TensorFlow ops that changed the numbers makes the section say so.
    changed = lambda spec: fake_child(spec, tf_sha="changed" if not spec["eager_meta_update"]
                                      else "tf")
    with flagsaver.flagsaver(bptt_steps=2, bptt_warmup=1, seed=0), \
        mock.patch.object(benchmark, "_run_child", changed):
      self.assertFalse(benchmark._bptt_section(["mlp"])["identical_to_previous"])  # pylint: disable=protected-access

  def test_markdown_has_every_section(self):
    self.assertIn(self.markdown.strip(), self.stdout)
    for heading in ("## Targets of the performance issue, this run",
                    "## model.fit step time, jit_compile=False",
                    "## The update alone (`optimizer.apply` on one 10,000-parameter variable)",
                    "## Flops per coordinate and the flop bound",
                    "## BPTT meta-training throughput (quadratic setup)"):
      self.assertIn(heading, self.markdown)
    self.assertIn("| `mlp` update alone, ns / param | ≤ 10 | ", self.markdown)
    self.assertIn("Meta-parameters of every run on TensorFlow ops identical to the previous "
                  "code's: True.",
                  self.markdown)


if __name__ == "__main__":
  tf.test.main()
