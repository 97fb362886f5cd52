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
  (`--bptt_steps`), with native kernels where the rule has one and, for such
  a rule, also on TensorFlow ops.

Sections (one module each): `fit`, `update`, `roofline`, `meta_training`, and
`embedding` (a sparse gradient, run on its own); `optimizers` and `measure`
hold what they share, `subprocess_runner` runs a configuration in a fresh
process, `report` writes the markdown and `command` is the command line.

Outputs `--output_dir/benchmark_results.json` and `--output_dir/benchmark.md`
and prints the markdown to stdout. Rules that need the objective value
(`rule.uses_loss`, the Li & Malik policy) are listed as skipped.

Usage:

  keras-l2o-benchmark                       # or: python -m scripts.benchmark
  keras-l2o-benchmark --sizes=10k,1M --rules=lstm,mlp --nojit --noconv
  keras-l2o-benchmark --quick               # a smoke run of a few seconds
"""


def run():
  """Console entry point `keras-l2o-benchmark` (defines the flags when called)."""
  from . import command  # pylint: disable=g-import-not-at-top
  command.run()
