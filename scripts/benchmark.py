r"""Benchmarks every keras_l2o rule against `keras.optimizers.Adam`.

In one run, for every rule of `keras_l2o.rules.names()` (as
`keras_l2o.LearnedOptimizer`, default `jit_rule="auto"`) and for
`keras.optimizers.Adam(1e-3)`:

* `model.fit` step time on MLPs of about 10k, 100k, 1M and 10M parameters
  (64-h-h-10, batch 128 of synthetic data generated here) and on a small conv
  net (`--conv`), with `jit_compile` off and on (`--jit`): per-batch wall
  times recorded by a Keras callback (`time.perf_counter` in
  `on_train_batch_begin/end`) over `--steps` steps after `--warmup` steps (at
  most `--max_seconds` each); median, 10th-90th percentile, and the ratio of
  the median to Adam's median of the same run;
* peak memory (VmHWM) of every jit-off configuration with at least 1M
  parameters, each in its own subprocess, unless `--nomemory`;
* floats of optimizer state per parameter; configurations whose state would
  exceed `--max_state_gb` are skipped (the lstm rule at 10M: 3.2 GB);
* the update alone: `optimizer.apply` on one variable of `--update_params`
  parameters inside a `tf.function`, in ns per parameter (median of repeats),
  for the default path (named in the table when it is not the reference:
  `native`, the rule's CPU kernel of `keras_l2o.native`, or `xla`, the fused
  form of `keras_l2o.step_paths`) and, for rules with such a path, for the
  reference path (`jit_rule=False`);
* the flops of every rule per coordinate (TensorFlow's registered op
  statistics of one traced `rule.apply`), the machine's measured matmul rate
  (float32, 4096 x 4096), hence each rule's flop bound in ns per parameter
  and how far its measured update is from it (`--flops`);
* BPTT meta-training throughput, inner steps per second, of every learned rule
  on the quadratic setup of `keras-l2o-meta-train --problem=quadratic`
  (`--bptt_steps`), and for the first one also with the meta-update applied
  eagerly as before (same numbers: the run checks the meta-parameters are
  bit-identical).

Outputs `--output_dir/benchmark_results.json` and `--output_dir/benchmark.md`
and prints the markdown to stdout. Rules that need the objective value
(`rule.uses_loss`, the Li & Malik policy) are listed as skipped.

Usage:

  keras-l2o-benchmark                       # or: python -m scripts.benchmark
  keras-l2o-benchmark --sizes=10k,1M --rules=lstm,mlp --nojit --noconv
  keras-l2o-benchmark --quick               # a smoke run of a few seconds
"""

import json
import logging as std_logging
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import step_paths
from keras_l2o.native import lstm_rule as native_lstm
from scripts import flags as script_flags
from scripts import meta_train_defaults

script_flags.define_benchmark_flags()
for _name in script_flags.BENCHMARK_FLAGS:  # Listed by --helpshort (the --child_* ones are not).
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

REFERENCE = "keras.Adam"
HAND_DESIGNED_LEARNING_RATE = 1e-3
INPUT_DIM, NUM_CLASSES = 64, 10
CONV_LABEL = "conv"
CONV_INPUT = (28, 28, 1)
CONV_DISTINCT_BATCHES = 8
# Peak memory is measured (one subprocess per configuration, ~10 s of start-up
# each) for MLPs of at least this many parameters; smaller ones run in process.
MEMORY_MIN_PARAMS = 1_000_000
UPDATE_WARMUP_CALLS = 3
MATMUL_SIZE = 4096
BANDWIDTH_FLOATS = 1 << 26  # 256 MB each way
FLOP_TRACE_SIZE = 4096
# The quadratic setup of `keras-l2o-meta-train --problem=quadratic --rule=...`
# (scripts/meta_train.py PROBLEM_DEFAULTS and flag defaults): 128 random 10-d
# quadratics per problem, truncations of 20 steps, horizon 100, validation on 4
# problems every 100 meta-steps, a checkpoint every 50.
BPTT_SETUP = {"problem_config": {"num_quadratics": 128}, "unroll_length": 20, "horizon": 100,
              "validation_every": 100, "validation_problems": 4, "checkpoint_every": 50,
              "log_every": 10}
QUICK_DEFAULTS = {"sizes": "10k", "steps": 10, "warmup": 2, "update_params": "10k",
                  "update_repeats": 5, "memory": False, "jit": False, "conv": False,
                  "flops": False, "bptt_steps": 0, "max_seconds": 0.0}
_INVOKED_ARGV = None  # sys.argv when started through `run()` (console or python -m).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------ optimizers --
def make_optimizer(name: str, jit_rule="auto"):
  """`keras.optimizers.Adam(1e-3)` for the reference, else `LearnedOptimizer(name)`.

  Learned rules keep their default learning rate (1.0: the rule as
  meta-trained); hand-designed rules get 1e-3 (the rate does not change timing).
  """
  if name == REFERENCE:
    return keras.optimizers.Adam(HAND_DESIGNED_LEARNING_RATE)
  rule = keras_l2o.rules.get(name)
  if rule.is_learned:
    return keras_l2o.LearnedOptimizer(rule, jit_rule=jit_rule)
  return keras_l2o.LearnedOptimizer(rule, learning_rate=HAND_DESIGNED_LEARNING_RATE,
                                    jit_rule=jit_rule)


def learning_rate_of(name: str) -> float:
  if name == REFERENCE or not keras_l2o.rules.get(name).is_learned:
    return HAND_DESIGNED_LEARNING_RATE
  return 1.0


def state_floats_per_parameter(name: str) -> int:
  if name == REFERENCE:
    return 2  # Adam's m and v (amsgrad=False).
  return keras_l2o.rules.get(name).state_floats_per_parameter()


def skip_reason(name: str):
  """Why `name` cannot be benchmarked on arbitrary models, or None."""
  if name != REFERENCE and getattr(keras_l2o.rules.get(name), "uses_loss", False):
    return ("needs the objective value (optimizer.set_loss) and a fixed dimension; "
            "model.fit supplies neither")
  return None


def has_fast_path(name: str) -> bool:
  """Whether `LearnedOptimizer(name)` has a path besides the reference (fused form or native kernel)."""
  if name == REFERENCE:
    return False
  rule = keras_l2o.rules.get(name)
  return step_paths.has_fused_form(rule) or native_lstm.supports(rule, tf.float32)


# ----------------------------------------------------------------- model --
def hidden_width(target_params: int) -> int:
  """Width h of a 64-h-h-10 MLP with about `target_params` parameters.

  Parameters: 64h + h + h*h + h + 10h + 10 = h^2 + 76h + 10.
  """
  a = INPUT_DIM + NUM_CLASSES + 2
  return max(1, int(round((-a + math.sqrt(a * a + 4 * max(target_params - NUM_CLASSES, 0))) / 2)))


def mlp_params(width: int) -> int:
  return width * width + (INPUT_DIM + NUM_CLASSES + 2) * width + NUM_CLASSES


def build_mlp(width: int):
  return keras.Sequential([
      keras.Input((INPUT_DIM,)),
      keras.layers.Dense(width, activation="relu"),
      keras.layers.Dense(width, activation="relu"),
      keras.layers.Dense(NUM_CLASSES),
  ])


def build_conv():
  """A small conv net on 28x28x1 inputs: 3 conv layers (32, 64, 128), global pooling, dense."""
  return keras.Sequential([
      keras.Input(CONV_INPUT),
      keras.layers.Conv2D(32, 3, strides=2, activation="relu"),
      keras.layers.Conv2D(64, 3, strides=2, activation="relu"),
      keras.layers.Conv2D(128, 3, activation="relu"),
      keras.layers.GlobalAveragePooling2D(),
      keras.layers.Dense(NUM_CLASSES),
  ])


def synthetic_data(num_examples: int, seed: int, input_shape=(INPUT_DIM,)):
  """Gaussian inputs labelled by a random linear teacher (learnable, 10 classes)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(num_examples,) + tuple(input_shape)).astype(np.float32)
  teacher = rng.normal(size=(int(np.prod(input_shape)), NUM_CLASSES)).astype(np.float32)
  y = np.argmax(x.reshape(num_examples, -1) @ teacher, axis=-1).astype(np.int32)
  return x, y


class BatchTimer(keras.callbacks.Callback):
  """Records the wall time of every training batch (perf_counter, begin to end)."""

  def __init__(self, warmup: int, max_seconds: float = 0.0, min_measured: int = 5):
    super().__init__()
    self.warmup = warmup
    self.max_seconds = max_seconds
    self.min_measured = min_measured
    self.times = []
    self._begin = None
    self._measure_start = None

  def on_train_batch_begin(self, batch, logs=None):
    self._begin = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    end = time.perf_counter()
    self.times.append(end - self._begin)
    measured = len(self.times) - self.warmup
    if measured == 1:
      self._measure_start = self._begin
    if (self.max_seconds > 0 and measured >= self.min_measured
        and end - self._measure_start > self.max_seconds):
      self.model.stop_training = True


def _maxrss_mb() -> float:
  """This process's peak resident memory in MB.

  On Linux `VmHWM` of /proc/self/status: `ru_maxrss` survives `exec`, so a
  subprocess started by a large parent would report the parent's peak.
  """
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024  # kB
  except OSError:
    pass
  # Linux reports kilobytes (macOS bytes).
  scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _stats_ms(seconds) -> dict:
  t = np.asarray(seconds, np.float64) * 1e3
  return {
      "median_ms": float(np.median(t)),
      "p10_ms": float(np.percentile(t, 10)),
      "p90_ms": float(np.percentile(t, 90)),
      "mean_ms": float(np.mean(t)),
      "min_ms": float(np.min(t)),
  }


def fit_benchmark(optimizer: str, size_label: str, target_params: int, *, steps: int,
                  warmup: int, batch_size: int, jit: bool, seed: int,
                  max_seconds: float = 0.0) -> dict:
  """Times `model.fit` steps of one (optimizer, model, jit) configuration.

  `size_label == CONV_LABEL` times the conv net (`target_params` ignored), any
  other label the MLP of about `target_params` parameters.
  """
  keras.backend.clear_session()
  keras.utils.set_random_seed(seed)
  rss_before = _maxrss_mb()
  total_steps = warmup + steps
  if size_label == CONV_LABEL:
    width = None
    model = build_conv()
    x, y = synthetic_data(batch_size * CONV_DISTINCT_BATCHES, seed, CONV_INPUT)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).repeat()
    fit_args = dict(x=data, steps_per_epoch=total_steps, shuffle=False)
  else:
    width = hidden_width(target_params)
    model = build_mlp(width)
    x, y = synthetic_data(batch_size * total_steps, seed)
    fit_args = dict(x=x, y=y, batch_size=batch_size, shuffle=False)
  model.compile(optimizer=make_optimizer(optimizer),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit)
  timer = BatchTimer(warmup, max_seconds)
  history = model.fit(epochs=1, verbose=0, callbacks=[timer], **fit_args)
  measured = timer.times[warmup:]
  if not measured:
    raise RuntimeError(f"No measured step for {optimizer} at {size_label}.")
  result = {
      "optimizer": optimizer,
      "model": "conv" if size_label == CONV_LABEL else "mlp",
      "size": size_label,
      "params": int(model.count_params()),
      "hidden_width": width,
      "jit": bool(jit),
      "batch_size": batch_size,
      "warmup_steps": warmup,
      "steps_measured": len(measured),
      "first_step_ms": timer.times[0] * 1e3,
      "final_loss": float(history.history["loss"][-1]),
      **_stats_ms(measured),
      "peak_rss_mb": None,
      "rss_increase_mb": None,
      "rss_before_model_mb": rss_before,
  }
  if width is not None:
    assert result["params"] == mlp_params(width), (result["params"], mlp_params(width))
  return result


def update_benchmark(optimizer: str, num_params: int, *, repeats: int, jit: bool, seed: int,
                     jit_rule="auto") -> dict:
  """Times `optimizer.apply` alone on one variable of `num_params` floats."""
  keras.backend.clear_session()
  rng = np.random.default_rng(seed)
  variable = keras.Variable(0.1 * rng.normal(size=(num_params,)).astype(np.float32),
                            name="benchmark_variable")
  gradient = tf.constant(1e-3 * rng.normal(size=(num_params,)).astype(np.float32))
  opt = make_optimizer(optimizer, jit_rule)
  opt.build([variable])
  paths = {}

  @tf.function(jit_compile=jit)
  def step():
    # The path the optimizer takes for this variable, seen from inside the trace (XLA or not).
    paths["path"] = ("keras" if optimizer == REFERENCE
                     else step_paths.step_path(jit_rule, opt.rule, variable))
    opt.apply([gradient], [variable])
    return opt.iterations.value

  first_call = _timed_calls(step, 1)[0]
  times = _timed_calls(step, repeats, warmup=UPDATE_WARMUP_CALLS - 1)
  ns = np.asarray(times) * 1e9 / num_params
  return {
      "optimizer": optimizer,
      "params": num_params,
      "jit": bool(jit),
      "jit_rule": jit_rule,
      "path": paths["path"],
      "repeats": repeats,
      "median_ns_per_param": float(np.median(ns)),
      "p10_ns_per_param": float(np.percentile(ns, 10)),
      "p90_ns_per_param": float(np.percentile(ns, 90)),
      "median_ms": float(np.median(times) * 1e3),
      "first_call_s": first_call,
  }


# ----------------------------------------------------------------- flops --
def rule_flops(name: str, size: int = FLOP_TRACE_SIZE) -> dict:
  """Flops per coordinate of one step of rule `name` (Adam's rule for the reference).

  Traces `rule.apply` on a vector of `size` coordinates and adds TensorFlow's
  registered `flops` statistics of every op (2 k per output of a matmul with
  inner size k, 1 per element of arithmetic ops). Ops without registered
  statistics (sigmoid, tanh, relu, sqrt, select, ...) count 0, so this is a
  lower bound dominated by the matmuls.
  """
  from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-import-not-at-top
  rule = keras_l2o.rules.get("adam" if name == REFERENCE else name)
  meta = rule.init_meta_params(0)
  state = rule.init_state(tf.zeros([size]))

  def step(grad, var, state):
    return rule.apply(meta, grad, var, state, tf.constant(3, tf.int64))

  spec = tf.TensorSpec([size], tf.float32)
  graph = tf.function(step).get_concrete_function(
      spec, spec, tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), state)).graph
  total, matmul = 0, 0
  for op in graph.get_operations():
    try:
      value = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
    except ValueError:  # no statistics registered for this op type
      value = None
    total += int(value or 0)
    if op.type in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum"):
      matmul += int(value or 0)
  return {"flops_per_coordinate": total / size, "matmul_flops_per_coordinate": matmul / size}


def _timed_calls(fn, repeats: int, warmup: int = 0) -> list:
  """Seconds of each of `repeats` calls of `fn().numpy()`, after `warmup` untimed calls."""
  for _ in range(warmup):
    fn().numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn().numpy()
    times.append(time.perf_counter() - start)
  return times


def matmul_rate(size: int = MATMUL_SIZE, repeats: int = 10) -> dict:
  """The machine's float32 matmul rate: `size` x `size` times `size` x `size`, in GFLOP/s."""
  a = tf.random.stateless_normal([size, size], seed=[0, 1])
  b = tf.random.stateless_normal([size, size], seed=[0, 2])
  matmul = tf.function(tf.matmul)
  times = _timed_calls(lambda: matmul(a, b), repeats, warmup=1)
  flops = 2.0 * size ** 3
  return {"size": size, "repeats": repeats, "best_gflops": flops / min(times) / 1e9,
          "median_gflops": flops / float(np.median(times)) / 1e9}


def memory_bandwidth(floats: int = BANDWIDTH_FLOATS, repeats: int = 10) -> dict:
  """The machine's streaming memory bandwidth as TensorFlow reaches it, in GB/s.

  Times `v.assign_add(w)` on two float32 variables of `floats` elements, far
  beyond the caches: in place, as an optimizer updates its state, reading 8
  bytes and writing 4 per element. (A fresh output per call, as `1.0001 * x`
  makes, measured 15 GB/s against about 40 in place on the 2-core machine.)
  """
  v = tf.Variable(tf.random.stateless_normal([floats], seed=[0, 3]))
  w = tf.Variable(tf.random.stateless_normal([floats], seed=[0, 4]) * 1e-6)

  @tf.function
  def step():
    v.assign_add(w, read_value=False)
    return v[0]

  times = _timed_calls(step, repeats, warmup=1)
  moved = 12.0 * floats
  return {"floats": floats, "repeats": repeats, "best_gb_per_s": moved / min(times) / 1e9,
          "median_gb_per_s": moved / float(np.median(times)) / 1e9}


def bytes_per_coordinate(name: str) -> float:
  """Least memory traffic of one update per coordinate: the state and the
  variable read and written, the gradient read (float32)."""
  return 4.0 * (2 * state_floats_per_parameter(name) + 2 + 1)


# ----------------------------------------------------------------- BPTT --
def bptt_benchmark(rule_name: str, *, steps: int, warmup: int, seed: int,
                   eager_meta_update: bool = False, native_kernels: bool = True) -> dict:
  """Inner optimizer steps per second of BPTT meta-training on the quadratic setup.

  Runs `warmup` meta-steps (tracing, first validation), then times
  `trainer.run()` for `steps` more: validation and checkpoints at their
  default cadence included, the SavedModel export at the end of `run()`
  excluded (it costs about a second once per run, not per step).
  `eager_meta_update=True` applies the meta-gradient with eager Keras ops, as
  the trainer did before issue 8; `native_kernels` is `BPTTConfig`'s (the
  result records whether a native kernel was used).
  """
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  from trainers import base as trainers_base  # pylint: disable=g-import-not-at-top
  from trainers import bptt  # pylint: disable=g-import-not-at-top
  family = problems.get("quadratic", seed=seed, **BPTT_SETUP["problem_config"])
  config = bptt.BPTTConfig(
      num_steps=warmup, seed=seed, native_kernels=native_kernels,
      **{k: v for k, v in BPTT_SETUP.items() if k != "problem_config"})
  with tempfile.TemporaryDirectory() as save_dir:
    trainer = bptt.BPTTTrainer(keras_l2o.rules.get(rule_name), family, config, save_dir)
    if eager_meta_update:  # pylint: disable=protected-access
      meta_variables = trainer._flat_meta
      trainer._apply_meta_gradient = lambda grads: trainer.meta_optimizer.apply(grads,
                                                                                meta_variables)
    trainer.run()
    config.num_steps = warmup + steps
    export = trainers_base.export_optimizer
    trainers_base.export_optimizer = lambda *args, **kwargs: None
    try:
      start = time.perf_counter()
      trainer.run()
      seconds = time.perf_counter() - start
    finally:
      trainers_base.export_optimizer = export
    meta = [v.numpy() for v in tf.nest.flatten(trainer.meta_vars)]
    native_used = trainer.native_kernels_used
  return {
      "rule": rule_name,
      "eager_meta_update": eager_meta_update,
      "native_kernels": native_used,
      "meta_steps": steps,
      "warmup_meta_steps": warmup,
      "unroll_length": config.unroll_length,
      "seconds": seconds,
      "meta_steps_per_second": steps / seconds,
      "inner_steps_per_second": steps * config.unroll_length / seconds,
      "meta_params_sha": _digest(meta),
  }


def _digest(arrays) -> str:
  import hashlib  # pylint: disable=g-import-not-at-top
  return hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()


# ----------------------------------------------------- subprocess runner --
def _run_child(spec: dict) -> dict:
  """Runs one configuration (`fit`, or `kind="bptt"`) in a fresh process."""
  with tempfile.TemporaryDirectory() as tmp:
    out_path = os.path.join(tmp, "result.json")
    cmd = [sys.executable, "-m", "scripts.benchmark", "--child_spec=" + json.dumps(spec),
           "--child_output=" + out_path]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, cwd=_REPO_ROOT, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or not os.path.exists(out_path):
      tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
      what = (f"BPTT with {spec['rule']}" if spec.get("kind") == "bptt" else
              f"{spec['optimizer']} at {spec['size_label']}")
      raise RuntimeError(f"Subprocess for {what} failed (exit code {proc.returncode}):\n{tail}")
    with open(out_path, encoding="utf-8") as f:
      return json.load(f)


def child_main(spec: dict, output_path: str):
  if spec.get("kind") == "bptt":  # thread pools first: they are fixed once TensorFlow runs an op
    threads = meta_train_defaults.apply_threads(spec["threads"])
    result = bptt_benchmark(spec["rule"], steps=spec["steps"], warmup=spec["warmup"],
                            seed=spec["seed"], eager_meta_update=spec["eager_meta_update"],
                            native_kernels=spec["native_kernels"])
    result["threads"] = threads
    with open(output_path, "w", encoding="utf-8") as f:
      json.dump(result, f)
    return
  result = fit_benchmark(spec["optimizer"], spec["size_label"], spec["target_params"],
                         steps=spec["steps"], warmup=spec["warmup"],
                         batch_size=spec["batch_size"], jit=spec["jit"], seed=spec["seed"],
                         max_seconds=spec["max_seconds"])
  result["peak_rss_mb"] = _maxrss_mb()
  result["rss_increase_mb"] = result["peak_rss_mb"] - result["rss_before_model_mb"]
  with open(output_path, "w", encoding="utf-8") as f:
    json.dump(result, f)


# --------------------------------------------------------------- report --
def machine_info() -> dict:
  cpu_model = platform.processor() or ""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu_model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
  return {
      "cpu_count": os.cpu_count(),
      "cpu_affinity": affinity,
      "cpu_model": cpu_model,
      "platform": platform.platform(),
      "python": platform.python_version(),
      "tensorflow": tf.__version__,
      "keras": keras.__version__,
      "numpy": np.__version__,
      "keras_l2o": keras_l2o.__version__,
      "gpus": len(tf.config.list_physical_devices("GPU")),
      "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
  }


def command_line() -> str:
  """The command that reproduces this run.

  Started from the command line: its arguments verbatim. Called in-process (a
  test): rebuilt from the flags given explicitly.
  """
  if _INVOKED_ARGV:
    prog = os.path.basename(_INVOKED_ARGV[0])
    prog = "keras-l2o-benchmark" if prog == "keras-l2o-benchmark" else "python -m scripts.benchmark"
    return " ".join([prog] + [shlex.quote(a) for a in _INVOKED_ARGV[1:]])
  return " ".join(["python -m scripts.benchmark"] +
                  [shlex.quote(a) for a in script_flags.explicit_flags(script_flags.BENCHMARK_FLAGS)])


def _fmt(value, digits=3) -> str:
  if value is None or (isinstance(value, float) and not math.isfinite(value)):
    return "n/a"
  if value == 0:
    return "0"
  magnitude = math.floor(math.log10(abs(value)))
  decimals = max(0, digits - 1 - magnitude)
  return f"{value:,.{decimals}f}"


def _table(header, rows) -> list:
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
          + ["| " + " | ".join(row) + " |" for row in rows] + [""])


def _fit_tables(report) -> list:
  cfg = report["config"]
  labels = cfg["sizes"] + ([CONV_LABEL] if cfg["conv"] else [])
  optimizers = [REFERENCE] + cfg["rules"]
  lines = []
  for jit in cfg["jit_modes"]:
    fit = {(r["optimizer"], r["size"]): r for r in report["fit"] if r["jit"] == jit}
    lines += [f"## model.fit step time, jit_compile={jit}", ""]
    header = ["optimizer"]
    for label in labels:
      params = next((r["params"] for (o, s), r in fit.items() if s == label), None)
      what = f"{params:,} params" if params else "n/a"
      header += [f"{label} ({what}): ms median [p10-p90]", f"{label}: × Adam"]
    rows = []
    for opt in optimizers:
      row = [f"`{opt}`"]
      for label in labels:
        r = fit.get((opt, label))
        if r is None:
          row += ["skipped" if (opt, label, jit) in report["skipped_fit"] else "n/a", "n/a"]
          continue
        steps_note = "" if r["steps_measured"] == cfg["steps"] else f" (n={r['steps_measured']})"
        row += [f"{_fmt(r['median_ms'])} [{_fmt(r['p10_ms'])}-{_fmt(r['p90_ms'])}]{steps_note}",
                f"{r['ratio_to_adam']:.2f}"]
      rows.append(row)
    lines += _table(header, rows)
    if report["memory_measured"] and not jit:
      header = ["optimizer", "state floats / param"] + [
          f"{label}: peak RSS MB (+ over pre-model)" for label in labels]
      rows = []
      for opt in optimizers:
        row = [f"`{opt}`", str(report["optimizers"][opt]["state_floats_per_parameter"])]
        for label in labels:
          r = fit.get((opt, label))
          ok = r and r["peak_rss_mb"] is not None
          row.append(f"{r['peak_rss_mb']:,.0f} (+{r['rss_increase_mb']:,.0f})" if ok else "n/a")
        rows.append(row)
      lines += ["### Peak memory, jit_compile=False", ""] + _table(header, rows)
  return lines


def _update_table(report) -> list:
  cfg = report["config"]
  optimizers = [REFERENCE] + cfg["rules"]
  n_update = cfg["update_params"]
  header = ["optimizer", "state floats / param"]
  for jit in cfg["jit_modes"]:
    header += [f"jit={jit}: ns / param median [p10-p90]", f"jit={jit}: × Adam"]
  header.append("reference path (`jit_rule=False`), jit=False: ns / param")
  rows = []
  for opt in optimizers:
    row = [f"`{opt}`", str(report["optimizers"][opt]["state_floats_per_parameter"])]
    for jit in cfg["jit_modes"]:
      u = next((r for r in report["update"] if r["optimizer"] == opt and r["jit"] == jit), None)
      path = f" ({u['path']})" if u and u.get("path") not in (None, "keras") else ""
      row += ([f"{_fmt(u['median_ns_per_param'])} [{_fmt(u['p10_ns_per_param'])}-"
               f"{_fmt(u['p90_ns_per_param'])}]{path}", f"{u['ratio_to_adam']:.2f}"]
              if u else ["n/a", "n/a"])
    ref = next((r for r in report["update_reference_path"] if r["optimizer"] == opt), None)
    row.append(_fmt(ref["median_ns_per_param"]) if ref else "same")
    rows.append(row)
  return ([f"## The update alone (`optimizer.apply` on one {n_update:,}-parameter variable)", ""]
          + _table(header, rows))


def _flops_table(report) -> list:
  flops = report["flops"]
  rate = flops["matmul"]
  memory = flops.get("memory")
  lines = ["## Flops per coordinate and the flop bound", "",
           f"Measured matmul rate: {rate['best_gflops']:.0f} GFLOP/s (best of {rate['repeats']}; "
           f"median {rate['median_gflops']:.0f}), float32 {rate['size']} x {rate['size']} "
           "matmul. Bound = flops per coordinate / that rate. Flops: TensorFlow's registered "
           "op statistics of one traced `rule.apply` (transcendentals count 0)."]
  if memory:
    lines[-1] += (f" Measured memory bandwidth: {memory['best_gb_per_s']:.1f} GB/s (best of "
                  f"{memory['repeats']}; median {memory['median_gb_per_s']:.1f}), in-place "
                  f"`v.assign_add(w)` on {memory['floats']:,} float32. Memory bound = bytes / "
                  "that bandwidth, with bytes = 4 x (2 x state floats + 3): state and variable read and "
                  "written, gradient read. Roofline = the larger bound.")
  lines.append("")
  header = ["optimizer", "flops / coordinate", "of which matmul", "bound ns / param",
            "bytes / coordinate", "memory bound ns / param",
            "update ns / param (jit=False, default path)", "× bound", "× roofline"]
  rows = []
  for entry in flops["rules"]:
    if "error" in entry:
      rows.append([f"`{entry['optimizer']}`", entry["error"]] + [""] * 7)
      continue
    rows.append([f"`{entry['optimizer']}`", _fmt(entry["flops_per_coordinate"], 4),
                 _fmt(entry["matmul_flops_per_coordinate"], 4), _fmt(entry["bound_ns_per_param"]),
                 _fmt(entry.get("bytes_per_coordinate")),
                 _fmt(entry.get("memory_bound_ns_per_param")),
                 _fmt(entry.get("update_ns_per_param")), _fmt(entry.get("times_bound")),
                 _fmt(entry.get("times_roofline"))])
  return lines + _table(header, rows)


def _bptt_table(report) -> list:
  b = report["bptt"]
  setup = b["setup"]
  lines = ["## BPTT meta-training throughput (quadratic setup)", "",
           f"`BPTTTrainer` on `problems.get('quadratic', num_quadratics="
           f"{setup['problem_config']['num_quadratics']})`, truncations of "
           f"{setup['unroll_length']} steps, horizon {setup['horizon']}, validation on "
           f"{setup['validation_problems']} problems every {setup['validation_every']} and a "
           f"checkpoint every {setup['checkpoint_every']} meta-steps (the defaults of "
           "`keras-l2o-meta-train --problem=quadratic`, its thread pools included); timed over "
           f"{b['meta_steps']} meta-steps after {b['warmup_meta_steps']}, each run in its own "
           "process. Previous: the same code with the eager meta-update, TensorFlow's "
           "default thread pools and TensorFlow ops, as before the performance work. Native "
           "kernels: the rule differentiated through `keras_l2o.native.lstm_cells` "
           "(`--native_kernels`, equal up to float rounding).", ""]
  header = ["rule", "meta-update", "rule's ops", "threads (inside an op, ops at a time; 0: "
            "TensorFlow's)", "inner steps / s", "meta-steps / s", "× previous",
            "meta-parameters = previous"]
  rows = []
  for r in b["results"]:
    if "error" in r:
      rows.append([f"`{r['rule']}`", "", "", "", r["error"], "", "", ""])
      continue
    threads = r.get("threads")
    same = r.get("identical_to_previous")
    rows.append([f"`{r['rule']}`", "eager (previous)" if r["eager_meta_update"] else "traced",
                 "native kernels" if r.get("native_kernels") else "TensorFlow",
                 f"{threads['intra_op_threads']}, {threads['inter_op_threads']}" if threads
                 else "n/a",
                 _fmt(r["inner_steps_per_second"]), _fmt(r["meta_steps_per_second"]),
                 _fmt(r.get("speedup_over_previous")),
                 "n/a" if same is None else ("bit for bit" if same else "no (rounding)")])
  lines += _table(header, rows)
  if b.get("identical_to_previous") is not None:
    lines += [f"Meta-parameters of every run on TensorFlow ops identical to the previous "
              f"code's: {b['identical_to_previous']}.", ""]
  return lines


def _targets(report) -> list:
  """The performance issue's targets, read off this run."""
  def fit_ratio(size, jit=False):
    r = next((r for r in report["fit"] if r["optimizer"] == "mlp" and r["size"] == size
              and r["jit"] == jit), None)
    return r["ratio_to_adam"] if r else None

  update = next((r for r in report["update"] if r["optimizer"] == "mlp" and not r["jit"]), None)
  lstm = next((r for r in report.get("flops", {}).get("rules", [])
               if r["optimizer"] == "lstm" and "times_bound" in r), None)
  bptt = next((r for r in report.get("bptt", {}).get("results", [])
               if r.get("rule") == "lstm" and not r.get("eager_meta_update")
               and "speedup_over_previous" in r), None)
  rows = [
      ["`mlp` fit step at ~1M params, × Adam (jit off)", "≤ 1.5", _fmt(fit_ratio("1M"))],
      ["`mlp` fit step at ~10M params, × Adam (jit off)", "≤ 1.3", _fmt(fit_ratio("10M"))],
      ["`mlp` update alone, ns / param", "≤ 10",
       _fmt(update["median_ns_per_param"]) if update else "n/a"],
      ["`lstm` update, × its flop bound", "≤ 1.3", _fmt(lstm["times_bound"]) if lstm else "n/a"],
      ["BPTT quadratic lstm, × previous throughput", "≥ 2",
       _fmt(bptt["speedup_over_previous"]) if bptt else "n/a"],
  ]
  return ["## Targets of the performance issue, this run", ""] + _table(
      ["quantity", "target", "measured"], rows)


def markdown_report(report: dict) -> str:
  m, cfg = report["machine"], report["config"]
  lines = [
      "# keras_l2o benchmark",
      "",
      f"- Machine: {m['cpu_count']} CPUs (affinity {m['cpu_affinity']}), {m['cpu_model']}, "
      f"{m['gpus']} GPUs; {m['platform']}; Python {m['python']}, TensorFlow {m['tensorflow']}, "
      f"Keras {m['keras']}, NumPy {m['numpy']}, keras_l2o {m['keras_l2o']}",
      f"- Command: `{report['command']}`",
      f"- Models: MLP 64-h-h-10 (ReLU)"
      + (", and a conv net (28x28x1 -> conv 32/64/128 -> pooling -> 10)" if cfg["conv"] else "")
      + f"; sparse softmax cross-entropy, batch {cfg['batch_size']} of synthetic data; "
      f"{cfg['steps']} measured steps after {cfg['warmup']} warm-up steps "
      "(per-batch wall time, `on_train_batch_begin` to `on_train_batch_end`)"
      + (f", at most {cfg['max_seconds']} s per configuration (n = steps measured where fewer)"
         if cfg["max_seconds"] else "") + ".",
      f"- Optimizers: `{REFERENCE}` = `keras.optimizers.Adam(1e-3)`; every rule as "
      "`keras_l2o.LearnedOptimizer(rule)` (learning_rate 1.0 for learned rules, 1e-3 for "
      "hand-designed ones; defaults `nonfinite='skip'`, `jit_rule='auto'`). `× Adam` = "
      "median / keras.Adam median of this run.",
      f"- Total time: {report['total_seconds']:.0f} s.",
  ]
  for name, reason in report["skipped_rules"].items():
    lines.append(f"- Skipped `{name}`: {reason}.")
  for name, size, jit, reason in report["skipped_fit_reasons"]:
    lines.append(f"- Skipped `{name}` at {size} (jit={jit}): {reason}.")
  lines.append("")
  if report.get("flops") and report.get("bptt") is not None:
    lines += _targets(report)
  lines += _fit_tables(report)
  lines += _update_table(report)
  if report.get("flops"):
    lines += _flops_table(report)
  if report.get("bptt"):
    lines += _bptt_table(report)
  lines += [f"Memory: {report['memory_note']}", ""]
  return "\n".join(lines)


# ----------------------------------------------------------------- main --
def _apply_quick_defaults():
  for name, value in QUICK_DEFAULTS.items():
    if not FLAGS[name].present:
      setattr(FLAGS, name, value)


def _fit_section(optimizers, models, jit_modes, state_limit_bytes):
  results, skipped = [], []
  for jit in jit_modes:
    for label, target in models:
      for opt in optimizers:  # Interleaved, so a drift of the machine hits all alike.
        state_bytes = 4.0 * state_floats_per_parameter(opt) * target
        if label != CONV_LABEL and state_bytes > state_limit_bytes:
          skipped.append((opt, label, jit, f"state {state_bytes / 1e9:.3g} GB > --max_state_gb="
                          f"{FLAGS.max_state_gb}"))
          continue
        spec = dict(optimizer=opt, size_label=label, target_params=target, steps=FLAGS.steps,
                    warmup=FLAGS.warmup, batch_size=FLAGS.batch_size, jit=jit, seed=FLAGS.seed,
                    max_seconds=FLAGS.max_seconds)
        t0 = time.perf_counter()
        if FLAGS.memory and not jit and label != CONV_LABEL and target >= MEMORY_MIN_PARAMS:
          result = _run_child(spec)
        else:
          result = fit_benchmark(opt, label, target, steps=FLAGS.steps, warmup=FLAGS.warmup,
                                 batch_size=FLAGS.batch_size, jit=jit, seed=FLAGS.seed,
                                 max_seconds=FLAGS.max_seconds)
        logging.info("fit %-10s %5s jit=%-5s %s params: median %.3f ms [%.3f-%.3f] over %d "
                     "steps (%.1f s)", opt, label, jit, f"{result['params']:,}", result["median_ms"],
                     result["p10_ms"], result["p90_ms"], result["steps_measured"],
                     time.perf_counter() - t0)
        results.append(result)
  for r in results:
    ref = next(a for a in results
               if a["optimizer"] == REFERENCE and a["size"] == r["size"] and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ms"] / ref["median_ms"]
  return results, skipped


def _update_section(optimizers, update_params, jit_modes):
  results, reference_path = [], []
  for jit in jit_modes:
    for opt in optimizers:
      t0 = time.perf_counter()
      result = update_benchmark(opt, update_params, repeats=FLAGS.update_repeats, jit=jit,
                                seed=FLAGS.seed)
      logging.info("update %-10s jit=%-5s %s params: %.3f ns/param (%.1f s)", opt, jit,
                   f"{update_params:,}", result["median_ns_per_param"], time.perf_counter() - t0)
      results.append(result)
  for r in results:
    ref = next(a for a in results if a["optimizer"] == REFERENCE and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ns_per_param"] / ref["median_ns_per_param"]
  for opt in optimizers:
    if has_fast_path(opt):
      result = update_benchmark(opt, update_params, repeats=FLAGS.update_repeats, jit=False,
                                seed=FLAGS.seed, jit_rule=False)
      logging.info("update %-10s reference path: %.3f ns/param", opt,
                   result["median_ns_per_param"])
      reference_path.append(result)
  return results, reference_path


def _flops_section(optimizers, update_results):
  rate = matmul_rate()
  bandwidth = memory_bandwidth()
  entries = []
  for opt in optimizers:
    try:
      entry = {"optimizer": opt, **rule_flops(opt)}
    except Exception as e:  # pylint: disable=broad-except
      entries.append({"optimizer": opt, "error": f"{type(e).__name__}: {e}"[:120]})
      continue
    entry["bound_ns_per_param"] = entry["flops_per_coordinate"] / rate["best_gflops"]
    entry["bytes_per_coordinate"] = bytes_per_coordinate(opt)
    entry["memory_bound_ns_per_param"] = (entry["bytes_per_coordinate"]
                                          / bandwidth["best_gb_per_s"])
    update = next((r for r in update_results if r["optimizer"] == opt and not r["jit"]), None)
    if update:
      entry["update_ns_per_param"] = update["median_ns_per_param"]
      entry["times_bound"] = update["median_ns_per_param"] / max(entry["bound_ns_per_param"],
                                                                 1e-12)
      entry["times_roofline"] = update["median_ns_per_param"] / max(
          entry["bound_ns_per_param"], entry["memory_bound_ns_per_param"], 1e-12)
    entries.append(entry)
  return {"matmul": rate, "memory": bandwidth, "trace_size": FLOP_TRACE_SIZE, "rules": entries}


def _bptt_section(rules):
  """Each rule two or three times, each run in its own process (thread pools are per process).

  This version: the traced meta-update with the thread pools of
  `keras-l2o-meta-train --problem=quadratic` and native kernels where the rule
  has one; for such a rule (lstm) also without them. The previous one: the
  eager meta-update, TensorFlow's default thread pools and TensorFlow ops, as
  before issue 8.
  """
  from keras_l2o.native import lstm_cells  # pylint: disable=g-import-not-at-top
  learned = [r for r in rules if keras_l2o.rules.get(r).is_learned]
  results = []
  current_threads = meta_train_defaults.threads("quadratic", "bptt")
  default_threads = {"intra_op_threads": 0, "inter_op_threads": 0}
  for rule in learned:
    variants = [(False, True), (True, False)]  # (eager meta-update, native kernels)
    rule_object = keras_l2o.rules.get(rule)
    if lstm_cells.for_meta_training(rule_object) is not rule_object:
      variants.insert(1, (False, False))
    for eager, native in variants:
      t0 = time.perf_counter()
      try:
        result = _run_child({"kind": "bptt", "rule": rule, "steps": FLAGS.bptt_steps,
                             "warmup": FLAGS.bptt_warmup, "seed": FLAGS.seed,
                             "eager_meta_update": eager, "native_kernels": native,
                             "threads": default_threads if eager else current_threads})
      except Exception as e:  # pylint: disable=broad-except
        results.append({"rule": rule, "eager_meta_update": eager, "native_kernels": native,
                        "error": f"{type(e).__name__}: {e}"[:120]})
        continue
      logging.info("bptt %-6s eager meta-update=%s native kernels=%s: %.0f inner steps/s "
                   "(%.1f s)", rule, eager, result["native_kernels"],
                   result["inner_steps_per_second"], time.perf_counter() - t0)
      results.append(result)
  identical = None
  for r in results:
    previous = next((p for p in results if p["rule"] == r["rule"] and p.get("eager_meta_update")
                     and "error" not in p), None)
    if previous and "error" not in r and not r["eager_meta_update"]:
      r["speedup_over_previous"] = (r["inner_steps_per_second"]
                                    / previous["inner_steps_per_second"])
      r["identical_to_previous"] = r["meta_params_sha"] == previous["meta_params_sha"]
      if not r["native_kernels"]:  # the same ops: the numbers must not change
        identical = (r["identical_to_previous"] if identical is None
                     else identical and r["identical_to_previous"])
  return {"setup": BPTT_SETUP, "meta_steps": FLAGS.bptt_steps,
          "warmup_meta_steps": FLAGS.bptt_warmup, "results": results,
          "identical_to_previous": identical}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
  if FLAGS.child_spec:
    if not FLAGS.child_output:
      raise app.UsageError("--child_spec needs --child_output.")
    child_main(json.loads(FLAGS.child_spec), FLAGS.child_output)
    return
  if FLAGS.quick:
    _apply_quick_defaults()
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)  # SavedModel chatter
  try:
    sizes = script_flags.parse_sizes(FLAGS.sizes)
    rules = script_flags.parse_rules(FLAGS.rules)
    update_params = script_flags.parse_size(FLAGS.update_params)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  output_dir = FLAGS.output_dir or script_flags.BENCHMARK_OUTPUT_DIR
  os.makedirs(output_dir, exist_ok=True)
  json_path = os.path.join(output_dir, FLAGS.output_json)
  jit_modes = [False, True] if FLAGS.jit else [False]
  skipped_rules = {r: skip_reason(r) for r in rules if skip_reason(r)}
  rules = [r for r in rules if r not in skipped_rules]
  optimizers = [REFERENCE] + rules
  models = sizes + ([(CONV_LABEL, 0)] if FLAGS.conv else [])
  start = time.perf_counter()

  logging.info("Benchmarking %s on %s (jit modes %s, %s).", ", ".join(optimizers),
               ", ".join(label for label, _ in models), jit_modes,
               "jit-off fits in subprocesses" if FLAGS.memory else "in process")
  fit_results, skipped_fit = _fit_section(optimizers, models, jit_modes,
                                          FLAGS.max_state_gb * 1e9)
  update_results, update_reference = _update_section(optimizers, update_params, jit_modes)
  flops = _flops_section(optimizers, update_results) if FLAGS.flops else None
  bptt = _bptt_section(rules) if FLAGS.bptt_steps > 0 else None

  measured = [r for r in fit_results if r["peak_rss_mb"] is not None]
  if measured:
    baseline = min(r["rss_before_model_mb"] for r in measured)
    memory_note = (
        f"every jit-off MLP of at least {MEMORY_MIN_PARAMS:,} parameters ran in its own "
        "subprocess; `peak RSS` is its peak resident memory (VmHWM) after fit (whole process, "
        f"including about {baseline:,.0f} MB of Python/TensorFlow before the model exists), `+` "
        "is its increase from just before building the model (model, optimizer state, gradients "
        "and the step's temporaries). Everything else ran in this process (no memory).")
  else:
    memory_note = ("not measured (--nomemory or --quick: all configurations ran in one process, "
                   "where the peak resident memory is process-wide and never decreases).")
  report = {
      "command": command_line(),
      "argv": list(sys.argv),
      "machine": machine_info(),
      "config": {
          "sizes": [label for label, _ in sizes],
          "size_targets": {label: target for label, target in sizes},
          "conv": bool(FLAGS.conv),
          "rules": rules,
          "reference": REFERENCE,
          "steps": FLAGS.steps,
          "warmup": FLAGS.warmup,
          "batch_size": FLAGS.batch_size,
          "jit_modes": jit_modes,
          "seed": FLAGS.seed,
          "max_seconds": FLAGS.max_seconds,
          "max_state_gb": FLAGS.max_state_gb,
          "update_params": update_params,
          "update_repeats": FLAGS.update_repeats,
          "update_warmup_calls": UPDATE_WARMUP_CALLS,
          "bptt_steps": FLAGS.bptt_steps,
          "bptt_warmup": FLAGS.bptt_warmup,
      },
      "optimizers": {
          opt: {"state_floats_per_parameter": state_floats_per_parameter(opt),
                "learning_rate": learning_rate_of(opt),
                "fast_path": has_fast_path(opt)} for opt in optimizers
      },
      "skipped_rules": skipped_rules,
      "skipped_fit": [list(s[:3]) for s in skipped_fit],
      "skipped_fit_reasons": [list(s) for s in skipped_fit],
      "memory_measured": bool(measured),
      "memory_note": memory_note,
      "fit": fit_results,
      "update": update_results,
      "update_reference_path": update_reference,
      "flops": flops,
      "bptt": bptt,
      "total_seconds": time.perf_counter() - start,
  }
  report_for_markdown = dict(report, skipped_fit={tuple(s[:3]) for s in skipped_fit})
  markdown = markdown_report(report_for_markdown)
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  md_path = os.path.join(output_dir, "benchmark.md")
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(markdown)
  print(markdown, flush=True)
  logging.info("Wrote %s and %s.", json_path, md_path)


def run():
  """Console entry point `keras-l2o-benchmark`."""
  global _INVOKED_ARGV
  _INVOKED_ARGV = list(sys.argv)
  app.run(main)


if __name__ == "__main__":
  run()
