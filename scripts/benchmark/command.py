"""The command line `keras-l2o-benchmark` (`python -m scripts.benchmark`): flags, sections, outputs.

Runs the sections in order (fit, update, roofline, meta-training), writes
`--output_dir/benchmark_results.json` and `--output_dir/benchmark.md`, and
prints the markdown. With `--child_spec` it runs one configuration for a
parent process instead (`subprocess_runner`).
"""

import json
import logging as std_logging
import os
import shlex
import sys
import time

from absl import app
from absl import flags
from absl import logging

from .. import flags as script_flags
from . import fit
from . import meta_training
from . import optimizers
from . import report as report_lib
from . import roofline
from . import update

script_flags.define_benchmark_flags()
for _name in script_flags.BENCHMARK_FLAGS:  # Listed by --helpshort (the --child_* ones are not).
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

QUICK_DEFAULTS = {"sizes": "10k", "steps": 10, "warmup": 2, "update_params": "10k",
                  "update_repeats": 5, "memory": False, "jit": False, "conv": False,
                  "flops": False, "bptt_steps": 0, "max_seconds": 0.0}
_INVOKED_ARGV = None  # sys.argv when started through `run()` (console or python -m).


def command_line() -> str:
  """The command that reproduces this run.

  Started from the command line: its arguments verbatim. Called in-process (a
  test): rebuilt from the flags given explicitly.
  """
  if _INVOKED_ARGV:
    prog = os.path.basename(_INVOKED_ARGV[0])
    prog = "keras-l2o-benchmark" if prog == "keras-l2o-benchmark" else f"python -m {__package__}"
    return " ".join([prog] + [shlex.quote(a) for a in _INVOKED_ARGV[1:]])
  given = script_flags.explicit_flags(script_flags.BENCHMARK_FLAGS)
  return " ".join([f"python -m {__package__}"] + [shlex.quote(a) for a in given])


def child_main(spec: dict, output_path: str):
  """Runs the configuration a parent process handed over and writes its JSON result."""
  result = meta_training.child_bptt(spec) if spec.get("kind") == "bptt" else fit.child_fit(spec)
  with open(output_path, "w", encoding="utf-8") as f:
    json.dump(result, f)


def _config(sizes, rules, update_params, jit_modes) -> dict:
  return {
      "sizes": [label for label, _ in sizes],
      "size_targets": {label: target for label, target in sizes},
      "conv": bool(FLAGS.conv),
      "rules": rules,
      "reference": optimizers.REFERENCE,
      "steps": FLAGS.steps,
      "warmup": FLAGS.warmup,
      "batch_size": FLAGS.batch_size,
      "jit_modes": jit_modes,
      "seed": FLAGS.seed,
      "max_seconds": FLAGS.max_seconds,
      "max_state_gb": FLAGS.max_state_gb,
      "update_params": update_params,
      "update_repeats": FLAGS.update_repeats,
      "update_warmup_calls": update.UPDATE_WARMUP_CALLS,
      "bptt_steps": FLAGS.bptt_steps,
      "bptt_warmup": FLAGS.bptt_warmup,
  }


def _run_sections(names, rules, models, update_params, jit_modes) -> dict:
  """The measured sections of the report."""
  logging.info("Benchmarking %s on %s (jit modes %s, %s).", ", ".join(names),
               ", ".join(label for label, _ in models), jit_modes,
               "jit-off fits in subprocesses" if FLAGS.memory else "in process")
  fit_results, skipped_fit = fit.fit_section(
      names, models, jit_modes, steps=FLAGS.steps, warmup=FLAGS.warmup,
      batch_size=FLAGS.batch_size, seed=FLAGS.seed, max_seconds=FLAGS.max_seconds,
      max_state_gb=FLAGS.max_state_gb, memory=FLAGS.memory)
  update_results, update_reference = update.update_section(
      names, update_params, jit_modes, repeats=FLAGS.update_repeats, seed=FLAGS.seed)
  return {
      "skipped_fit": [list(s[:3]) for s in skipped_fit],
      "skipped_fit_reasons": [list(s) for s in skipped_fit],
      "memory_measured": any(r["peak_rss_mb"] is not None for r in fit_results),
      "memory_note": report_lib.memory_note(fit_results),
      "fit": fit_results,
      "update": update_results,
      "update_reference_path": update_reference,
      "flops": roofline.roofline_section(names, update_results) if FLAGS.flops else None,
      "bptt": (meta_training.bptt_section(rules, steps=FLAGS.bptt_steps,
                                          warmup=FLAGS.bptt_warmup, seed=FLAGS.seed)
               if FLAGS.bptt_steps > 0 else None),
  }


def _write(report: dict, output_dir: str):
  """Writes the JSON and the markdown, and prints the markdown."""
  json_path = os.path.join(output_dir, FLAGS.output_json)
  skipped = {tuple(s) for s in report["skipped_fit"]}
  markdown = report_lib.markdown_report(dict(report, skipped_fit=skipped))
  with open(json_path, "w", encoding="utf-8") as f:
    json.dump(report, f, indent=2)
  md_path = os.path.join(output_dir, "benchmark.md")
  with open(md_path, "w", encoding="utf-8") as f:
    f.write(markdown)
  print(markdown, flush=True)
  logging.info("Wrote %s and %s.", json_path, md_path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
  if FLAGS.child_spec:
    if not FLAGS.child_output:
      raise app.UsageError("--child_spec needs --child_output.")
    child_main(json.loads(FLAGS.child_spec), FLAGS.child_output)
    return
  if FLAGS.quick:
    for name, value in QUICK_DEFAULTS.items():
      if not FLAGS[name].present:
        setattr(FLAGS, name, value)
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)  # SavedModel chatter
  try:
    sizes = script_flags.parse_sizes(FLAGS.sizes)
    rules = script_flags.parse_rules(FLAGS.rules)
    update_params = script_flags.parse_size(FLAGS.update_params)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  output_dir = FLAGS.output_dir or script_flags.BENCHMARK_OUTPUT_DIR
  os.makedirs(output_dir, exist_ok=True)
  jit_modes = [False, True] if FLAGS.jit else [False]
  skipped_rules = {r: optimizers.skip_reason(r) for r in rules if optimizers.skip_reason(r)}
  rules = [r for r in rules if r not in skipped_rules]
  names = [optimizers.REFERENCE] + rules
  models = sizes + ([(fit.CONV_LABEL, 0)] if FLAGS.conv else [])
  start = time.perf_counter()
  sections = _run_sections(names, rules, models, update_params, jit_modes)
  report = {
      "command": command_line(),
      "argv": list(sys.argv),
      "machine": report_lib.machine_info(),
      "config": _config(sizes, rules, update_params, jit_modes),
      "optimizers": {
          name: {"state_floats_per_parameter": optimizers.state_floats_per_parameter(name),
                 "learning_rate": optimizers.learning_rate_of(name),
                 "fast_path": optimizers.has_fast_path(name)} for name in names
      },
      "skipped_rules": skipped_rules,
      **sections,
      "total_seconds": time.perf_counter() - start,
  }
  _write(report, output_dir)


def run():
  """Console entry point `keras-l2o-benchmark`."""
  global _INVOKED_ARGV
  _INVOKED_ARGV = list(sys.argv)
  app.run(main)
