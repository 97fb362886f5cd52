"""The benchmark's markdown report, and the machine it ran on."""

import math
import os
import platform

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from . import fit
from . import optimizers


def machine_info() -> dict:
  """CPUs, platform and library versions of this machine."""
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
  labels = cfg["sizes"] + ([fit.CONV_LABEL] if cfg["conv"] else [])
  names = [optimizers.REFERENCE] + cfg["rules"]
  lines = []
  for jit in cfg["jit_modes"]:
    timed = {(r["optimizer"], r["size"]): r for r in report["fit"] if r["jit"] == jit}
    lines += [f"## model.fit step time, jit_compile={jit}", ""]
    header = ["optimizer"]
    for label in labels:
      params = next((r["params"] for (o, s), r in timed.items() if s == label), None)
      what = f"{params:,} params" if params else "n/a"
      header += [f"{label} ({what}): ms median [p10-p90]", f"{label}: × Adam"]
    rows = []
    for opt in names:
      row = [f"`{opt}`"]
      for label in labels:
        r = timed.get((opt, label))
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
      for opt in names:
        row = [f"`{opt}`", str(report["optimizers"][opt]["state_floats_per_parameter"])]
        for label in labels:
          r = timed.get((opt, label))
          ok = r and r["peak_rss_mb"] is not None
          row.append(f"{r['peak_rss_mb']:,.0f} (+{r['rss_increase_mb']:,.0f})" if ok else "n/a")
        rows.append(row)
      lines += ["### Peak memory, jit_compile=False", ""] + _table(header, rows)
  return lines


def _update_table(report) -> list:
  cfg = report["config"]
  names = [optimizers.REFERENCE] + cfg["rules"]
  n_update = cfg["update_params"]
  header = ["optimizer", "state floats / param"]
  for jit in cfg["jit_modes"]:
    header += [f"jit={jit}: ns / param median [p10-p90]", f"jit={jit}: × Adam"]
  header.append("reference path (`jit_rule=False`), jit=False: ns / param")
  rows = []
  for opt in names:
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


def _roofline_table(report) -> list:
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
           "process, without what a run costs once (restore, last save, export). Native "
           "kernels: the rule differentiated through `keras_l2o.native.lstm_cells` "
           "(`--native_kernels`, equal up to float rounding).", ""]
  header = ["rule", "rule's ops", "threads (inside an op, ops at a time; 0: TensorFlow's)",
            "inner steps / s", "meta-steps / s"]
  rows = []
  for r in b["results"]:
    if "error" in r:
      rows.append([f"`{r['rule']}`", "", "", r["error"], ""])
      continue
    threads = r.get("threads")
    rows.append([f"`{r['rule']}`", "native kernels" if r.get("native_kernels") else "TensorFlow",
                 f"{threads['intra_op_threads']}, {threads['inter_op_threads']}" if threads
                 else "n/a",
                 _fmt(r["inner_steps_per_second"]), _fmt(r["meta_steps_per_second"])])
  return lines + _table(header, rows)


def memory_note(fit_results) -> str:
  """How peak memory was measured in this run (or why not)."""
  measured = [r for r in fit_results if r["peak_rss_mb"] is not None]
  if not measured:
    return ("not measured (--nomemory or --quick: all configurations ran in one process, "
            "where the peak resident memory is process-wide and never decreases).")
  baseline = min(r["rss_before_model_mb"] for r in measured)
  return (f"every jit-off MLP of at least {fit.MEMORY_MIN_PARAMS:,} parameters ran in its own "
          "subprocess; `peak RSS` is its peak resident memory (VmHWM) after fit (whole process, "
          f"including about {baseline:,.0f} MB of Python/TensorFlow before the model exists), "
          "`+` is its increase from just before building the model (model, optimizer state, "
          "gradients and the step's temporaries). Everything else ran in this process (no "
          "memory).")


def markdown_report(report: dict) -> str:
  m, cfg = report["machine"], report["config"]
  lines = [
      "# keras_l2o benchmark",
      "",
      f"- Machine: {m['cpu_count']} CPUs (affinity {m['cpu_affinity']}), {m['cpu_model']}, "
      f"{m['gpus']} GPUs; {m['platform']}; Python {m['python']}, TensorFlow {m['tensorflow']}, "
      f"Keras {m['keras']}, NumPy {m['numpy']}, keras_l2o {m['keras_l2o']}",
      f"- Command: `{report['command']}`",
      "- Models: MLP 64-h-h-10 (ReLU)"
      + (", and a conv net (28x28x1 -> conv 32/64/128 -> pooling -> 10)" if cfg["conv"] else "")
      + f"; sparse softmax cross-entropy, batch {cfg['batch_size']} of synthetic data; "
      f"{cfg['steps']} measured steps after {cfg['warmup']} warm-up steps "
      "(per-batch wall time, `on_train_batch_begin` to `on_train_batch_end`)"
      + (f", at most {cfg['max_seconds']} s per configuration (n = steps measured where fewer)"
         if cfg["max_seconds"] else "") + ".",
      f"- Optimizers: `{optimizers.REFERENCE}` = `keras.optimizers.Adam(1e-3)`; every rule as "
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
  lines += _fit_tables(report)
  lines += _update_table(report)
  if report.get("flops"):
    lines += _roofline_table(report)
  if report.get("bptt"):
    lines += _bptt_table(report)
  lines += [f"Memory: {report['memory_note']}", ""]
  return "\n".join(lines)
