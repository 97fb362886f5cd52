r"""Benchmarks every keras_l2o rule against `keras.optimizers.Adam`.

In one run, for every rule of `keras_l2o.rules.names()` (as
`keras_l2o.LearnedOptimizer`) and for `keras.optimizers.Adam(1e-3)`:

* `model.fit` step time on MLPs of about 10k, 100k and 1M parameters (64-h-h-10,
  batch 128 of synthetic data generated here): per-batch wall times recorded by
  a Keras callback (`time.perf_counter` in `on_train_batch_begin/end`) over
  `--steps` steps after `--warmup` steps; median, 10th-90th percentile, and the
  ratio of the median to Adam's median of the same run;
* floats of optimizer state per parameter;
* the update alone: `optimizer.apply` on one variable of `--update_params`
  parameters inside a `tf.function`, in ns per parameter (median of repeats);
* peak memory (ru_maxrss) of every (optimizer, size) in its own subprocess,
  unless `--nomemory`.

Outputs `--output_dir/benchmark_results.json` and `--output_dir/benchmark.md`
and prints the markdown to stdout.

Usage:

  keras-l2o-benchmark                       # or: python -m scripts.benchmark
  keras-l2o-benchmark --sizes=10k,1M --rules=lstm,mlp --jit
  keras-l2o-benchmark --quick               # a smoke run of a few seconds
"""

import json
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
from scripts import flags as script_flags

script_flags.define_benchmark_flags()
for _name in script_flags.BENCHMARK_FLAGS:  # Listed by --helpshort (the --child_* ones are not).
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

REFERENCE = "keras.Adam"
HAND_DESIGNED_LEARNING_RATE = 1e-3
INPUT_DIM, NUM_CLASSES = 64, 10
UPDATE_WARMUP_CALLS = 3
QUICK_DEFAULTS = {"sizes": "10k", "steps": 10, "warmup": 2, "update_params": "10k",
                  "update_repeats": 5, "memory": False}
_INVOKED_ARGV = None  # sys.argv when started through `run()` (console or python -m).
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------ optimizers --
def make_optimizer(name: str):
  """`keras.optimizers.Adam(1e-3)` for the reference, else `LearnedOptimizer(name)`.

  Learned rules keep their default learning rate (1.0: the rule as
  meta-trained); hand-designed rules get 1e-3 (the rate does not change timing).
  """
  if name == REFERENCE:
    return keras.optimizers.Adam(HAND_DESIGNED_LEARNING_RATE)
  rule = keras_l2o.rules.get(name)
  if rule.is_learned:
    return keras_l2o.LearnedOptimizer(rule)
  return keras_l2o.LearnedOptimizer(rule, learning_rate=HAND_DESIGNED_LEARNING_RATE)


def learning_rate_of(name: str) -> float:
  if name == REFERENCE or not keras_l2o.rules.get(name).is_learned:
    return HAND_DESIGNED_LEARNING_RATE
  return 1.0


def state_floats_per_parameter(name: str) -> int:
  if name == REFERENCE:
    return 2  # Adam's m and v (amsgrad=False).
  return keras_l2o.rules.get(name).state_floats_per_parameter()


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


def synthetic_data(num_examples: int, seed: int):
  """Gaussian inputs labelled by a random linear teacher (learnable, 10 classes)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(num_examples, INPUT_DIM)).astype(np.float32)
  teacher = rng.normal(size=(INPUT_DIM, NUM_CLASSES)).astype(np.float32)
  y = np.argmax(x @ teacher, axis=-1).astype(np.int32)
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
  """Times `model.fit` steps of one (optimizer, size, jit) configuration."""
  keras.backend.clear_session()
  keras.utils.set_random_seed(seed)
  x, y = synthetic_data(batch_size * (warmup + steps), seed)
  rss_before = _maxrss_mb()
  width = hidden_width(target_params)
  model = build_mlp(width)
  model.compile(optimizer=make_optimizer(optimizer),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit)
  timer = BatchTimer(warmup, max_seconds)
  history = model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0,
                      callbacks=[timer])
  measured = timer.times[warmup:]
  if not measured:
    raise RuntimeError(f"No measured step for {optimizer} at {size_label}.")
  result = {
      "optimizer": optimizer,
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
  assert result["params"] == mlp_params(width), (result["params"], mlp_params(width))
  return result


def update_benchmark(optimizer: str, num_params: int, *, repeats: int, jit: bool,
                     seed: int) -> dict:
  """Times `optimizer.apply` alone on one variable of `num_params` floats."""
  keras.backend.clear_session()
  rng = np.random.default_rng(seed)
  variable = keras.Variable(0.1 * rng.normal(size=(num_params,)).astype(np.float32),
                            name="benchmark_variable")
  gradient = tf.constant(1e-3 * rng.normal(size=(num_params,)).astype(np.float32))
  opt = make_optimizer(optimizer)
  opt.build([variable])

  @tf.function(jit_compile=jit)
  def step():
    opt.apply([gradient], [variable])
    return opt.iterations.value

  for _ in range(UPDATE_WARMUP_CALLS):
    step().numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step().numpy()
    times.append(time.perf_counter() - start)
  ns = np.asarray(times) * 1e9 / num_params
  return {
      "optimizer": optimizer,
      "params": num_params,
      "jit": bool(jit),
      "repeats": repeats,
      "median_ns_per_param": float(np.median(ns)),
      "p10_ns_per_param": float(np.percentile(ns, 10)),
      "p90_ns_per_param": float(np.percentile(ns, 90)),
      "median_ms": float(np.median(times) * 1e3),
  }


# ----------------------------------------------------- subprocess runner --
def _run_child(spec: dict) -> dict:
  """Runs one fit configuration in a fresh process; adds its peak RSS."""
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
      raise RuntimeError(f"Subprocess for {spec['optimizer']} at {spec['size_label']} failed "
                         f"(exit code {proc.returncode}):\n{tail}")
    with open(out_path, encoding="utf-8") as f:
      return json.load(f)


def child_main(spec: dict, output_path: str):
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


def markdown_report(report: dict) -> str:
  m, cfg = report["machine"], report["config"]
  sizes = cfg["sizes"]
  optimizers = [REFERENCE] + cfg["rules"]
  lines = [
      "# keras_l2o benchmark",
      "",
      f"- Machine: {m['cpu_count']} CPUs (affinity {m['cpu_affinity']}), {m['cpu_model']}, "
      f"{m['gpus']} GPUs; {m['platform']}; Python {m['python']}, TensorFlow {m['tensorflow']}, "
      f"Keras {m['keras']}, NumPy {m['numpy']}, keras_l2o {m['keras_l2o']}",
      f"- Command: `{report['command']}`",
      f"- Model: MLP 64-h-h-10 (ReLU), sparse softmax cross-entropy, batch {cfg['batch_size']} "
      f"of synthetic data; {cfg['steps']} measured steps after {cfg['warmup']} warm-up steps "
      f"(per-batch wall time, `on_train_batch_begin` to `on_train_batch_end`)"
      + (f", at most {cfg['max_seconds']} s per configuration" if cfg["max_seconds"] else "")
      + ".",
      f"- Optimizers: `{REFERENCE}` = `keras.optimizers.Adam(1e-3)`; every rule as "
      "`keras_l2o.LearnedOptimizer(rule)` (learning_rate 1.0 for learned rules, 1e-3 for "
      "hand-designed ones; default `nonfinite='skip'`). `× Adam` = median / keras.Adam median "
      "of this run.",
      f"- Total time: {report['total_seconds']:.0f} s.",
      "",
  ]
  for jit in cfg["jit_modes"]:
    fit = {(r["optimizer"], r["size"]): r for r in report["fit"] if r["jit"] == jit}
    lines += [f"## model.fit step time, jit_compile={jit}", ""]
    header = ["optimizer"]
    for label in sizes:
      params = next((r["params"] for (o, s), r in fit.items() if s == label), None)
      header += [f"{label} ({params:,} params): ms median [p10-p90]", f"{label}: × Adam"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for opt in optimizers:
      row = [f"`{opt}`"]
      for label in sizes:
        r = fit.get((opt, label))
        if r is None:
          row += ["n/a", "n/a"]
          continue
        steps_note = "" if r["steps_measured"] == cfg["steps"] else f" (n={r['steps_measured']})"
        row += [f"{_fmt(r['median_ms'])} [{_fmt(r['p10_ms'])}-{_fmt(r['p90_ms'])}]{steps_note}",
                f"{r['ratio_to_adam']:.2f}"]
      lines.append("| " + " | ".join(row) + " |")
    lines.append("")

    upd = {r["optimizer"]: r for r in report["update"] if r["jit"] == jit}
    n_update = next(iter(upd.values()))["params"] if upd else 0
    lines += [f"## State, update alone and memory, jit_compile={jit}", ""]
    header = ["optimizer", "state floats / param",
              f"update ns / param ({n_update:,}-param variable) median [p10-p90]",
              "update × Adam"]
    if report["memory_measured"]:
      header += [f"{label}: peak RSS MB (+ over pre-model)" for label in sizes]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for opt in optimizers:
      u = upd.get(opt)
      row = [f"`{opt}`", str(report["optimizers"][opt]["state_floats_per_parameter"])]
      row += ([f"{_fmt(u['median_ns_per_param'])} [{_fmt(u['p10_ns_per_param'])}-"
               f"{_fmt(u['p90_ns_per_param'])}]", f"{u['ratio_to_adam']:.2f}"]
              if u else ["n/a", "n/a"])
      if report["memory_measured"]:
        for label in sizes:
          r = fit.get((opt, label))
          row.append(f"{r['peak_rss_mb']:,.0f} (+{r['rss_increase_mb']:,.0f})" if r else "n/a")
      lines.append("| " + " | ".join(row) + " |")
    lines.append("")
  lines += [f"Memory: {report['memory_note']}", ""]
  return "\n".join(lines)


# ----------------------------------------------------------------- main --
def _apply_quick_defaults():
  for name, value in QUICK_DEFAULTS.items():
    if not FLAGS[name].present:
      setattr(FLAGS, name, value)


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
  optimizers = [REFERENCE] + rules
  start = time.perf_counter()

  logging.info("Benchmarking %s at sizes %s (jit modes %s, %s).", ", ".join(optimizers),
               ", ".join(label for label, _ in sizes), jit_modes,
               "one subprocess per configuration" if FLAGS.memory else "in process")
  fit_results = []
  for jit in jit_modes:
    for label, target in sizes:
      for opt in optimizers:  # Interleaved, so a drift of the machine hits all alike.
        spec = dict(optimizer=opt, size_label=label, target_params=target, steps=FLAGS.steps,
                    warmup=FLAGS.warmup, batch_size=FLAGS.batch_size, jit=jit, seed=FLAGS.seed,
                    max_seconds=FLAGS.max_seconds)
        t0 = time.perf_counter()
        if FLAGS.memory:
          result = _run_child(spec)
        else:
          result = fit_benchmark(opt, label, target, steps=FLAGS.steps, warmup=FLAGS.warmup,
                                 batch_size=FLAGS.batch_size, jit=jit, seed=FLAGS.seed,
                                 max_seconds=FLAGS.max_seconds)
        logging.info("fit %-10s %5s jit=%-5s %s params: median %.3f ms [%.3f-%.3f] over %d "
                     "steps (%.1f s)", opt, label, jit, f"{result['params']:,}", result["median_ms"],
                     result["p10_ms"], result["p90_ms"], result["steps_measured"],
                     time.perf_counter() - t0)
        fit_results.append(result)
  for r in fit_results:
    ref = next(a for a in fit_results
               if a["optimizer"] == REFERENCE and a["size"] == r["size"] and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ms"] / ref["median_ms"]

  update_results = []
  for jit in jit_modes:
    for opt in optimizers:
      t0 = time.perf_counter()
      result = update_benchmark(opt, update_params, repeats=FLAGS.update_repeats, jit=jit,
                                seed=FLAGS.seed)
      logging.info("update %-10s jit=%-5s %s params: %.3f ns/param (%.1f s)", opt, jit,
                   f"{update_params:,}", result["median_ns_per_param"], time.perf_counter() - t0)
      update_results.append(result)
  for r in update_results:
    ref = next(a for a in update_results if a["optimizer"] == REFERENCE and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ns_per_param"] / ref["median_ns_per_param"]

  if FLAGS.memory:
    baseline = min(r["rss_before_model_mb"] for r in fit_results)
    memory_note = (
        "every (optimizer, size) ran in its own subprocess; `peak RSS` is its ru_maxrss after "
        "fit (whole process, including about "
        f"{baseline:,.0f} MB of Python/TensorFlow before the model exists), `+` is the increase "
        "of ru_maxrss from just before building the model (model, optimizer state, gradients "
        "and the step's temporaries).")
  else:
    memory_note = ("not measured (--nomemory or --quick: all configurations ran in one process, "
                   "where ru_maxrss is process-wide and never decreases).")
  report = {
      "command": command_line(),
      "argv": list(sys.argv),
      "machine": machine_info(),
      "config": {
          "sizes": [label for label, _ in sizes],
          "size_targets": {label: target for label, target in sizes},
          "rules": rules,
          "reference": REFERENCE,
          "steps": FLAGS.steps,
          "warmup": FLAGS.warmup,
          "batch_size": FLAGS.batch_size,
          "jit_modes": jit_modes,
          "seed": FLAGS.seed,
          "max_seconds": FLAGS.max_seconds,
          "update_params": update_params,
          "update_repeats": FLAGS.update_repeats,
          "update_warmup_calls": UPDATE_WARMUP_CALLS,
      },
      "optimizers": {
          opt: {"state_floats_per_parameter": state_floats_per_parameter(opt),
                "learning_rate": learning_rate_of(opt)} for opt in optimizers
      },
      "memory_measured": bool(FLAGS.memory),
      "memory_note": memory_note,
      "fit": fit_results,
      "update": update_results,
      "total_seconds": time.perf_counter() - start,
  }
  markdown = markdown_report(report)
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
