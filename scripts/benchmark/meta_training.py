"""Section: BPTT meta-training throughput, inner steps per second, of every learned rule.

On the quadratic setup of `keras-l2o-meta-train --problem=quadratic`, with its
thread pools, each run in its own process (thread pools are per process):
once per rule with native kernels where the rule has one, and for such a rule
(lstm) once more on TensorFlow ops.
"""

import tempfile
import time

from absl import logging

import keras_l2o
from keras_l2o import problems
from keras_l2o.native import lstm_cells
from .. import meta_train_defaults
from .. import trainers_module
from . import subprocess_runner

bptt = trainers_module("bptt")

# The quadratic setup of `keras-l2o-meta-train --problem=quadratic --rule=...`
# (scripts/meta_train_defaults.py and the flag defaults): 128 random 10-d
# quadratics per problem, truncations of 20 steps, horizon 100, validation on 4
# problems every 100 meta-steps, a checkpoint every 50.
BPTT_SETUP = {"problem_config": {"num_quadratics": 128}, "unroll_length": 20, "horizon": 100,
              "validation_every": 100, "validation_problems": 4, "checkpoint_every": 50,
              "log_every": 10}


def bptt_benchmark(rule_name: str, *, steps: int, warmup: int, seed: int,
                   native_kernels: bool = True) -> dict:
  """Inner optimizer steps per second of BPTT meta-training on the quadratic setup.

  Runs `warmup` meta-steps (tracing, first validation), then times
  `trainer.run()` for `steps` more, validation and checkpoints at their
  default cadence included. What a `run()` costs once rather than per step
  (restoring the checkpoint, the last save and the SavedModel export, about a
  second) is timed by one more `run()` with no meta-step left, and taken off.
  `native_kernels` is `BPTTConfig`'s (the result records whether a native
  kernel was used).

  Returns:
    The timing: `seconds` of the `steps` meta-steps, meta-steps and inner
    steps per second, and the setup.
  """
  family = problems.get("quadratic", seed=seed, **BPTT_SETUP["problem_config"])
  config = bptt.BPTTConfig(
      num_steps=warmup, seed=seed, native_kernels=native_kernels,
      **{k: v for k, v in BPTT_SETUP.items() if k != "problem_config"})
  with tempfile.TemporaryDirectory() as save_dir:
    trainer = bptt.BPTTTrainer(keras_l2o.rules.get(rule_name), family, config, save_dir)
    trainer.run()
    config.num_steps = warmup + steps
    start = time.perf_counter()
    trainer.run()
    timed = time.perf_counter() - start
    start = time.perf_counter()
    trainer.run()  # no meta-step left: restore, save, export
    once = time.perf_counter() - start
    native_used = trainer.native_kernels_used
  seconds = timed - once
  return {
      "rule": rule_name,
      "native_kernels": native_used,
      "meta_steps": steps,
      "warmup_meta_steps": warmup,
      "unroll_length": config.unroll_length,
      "seconds": seconds,
      "run_overhead_seconds": once,
      "meta_steps_per_second": steps / seconds,
      "inner_steps_per_second": steps * config.unroll_length / seconds,
  }


def child_bptt(spec: dict) -> dict:
  """`bptt_benchmark` in a fresh process, with the thread pools of `spec["threads"]`."""
  threads = meta_train_defaults.apply_threads(spec["threads"])  # before TensorFlow runs an op
  result = bptt_benchmark(spec["rule"], steps=spec["steps"], warmup=spec["warmup"],
                          seed=spec["seed"], native_kernels=spec["native_kernels"])
  result["threads"] = threads
  return result


def bptt_section(rules, *, steps: int, warmup: int, seed: int) -> dict:
  """`bptt_benchmark` of every learned rule of `rules`, each run in its own process.

  With the thread pools of `keras-l2o-meta-train --problem=quadratic` and
  native kernels where the rule has one; for such a rule (lstm) also on
  TensorFlow ops. A run that fails is recorded with its error.
  """
  learned = [r for r in rules if keras_l2o.rules.get(r).is_learned]
  results = []
  threads = meta_train_defaults.threads("quadratic", "bptt")
  for rule in learned:
    rule_object = keras_l2o.rules.get(rule)
    variants = [True]  # native kernels
    if lstm_cells.for_meta_training(rule_object) is not rule_object:
      variants.append(False)
    for native in variants:
      t0 = time.perf_counter()
      try:
        result = subprocess_runner.run_child({
            "kind": "bptt", "rule": rule, "steps": steps, "warmup": warmup, "seed": seed,
            "native_kernels": native, "threads": threads})
      except Exception as e:  # pylint: disable=broad-except
        results.append({"rule": rule, "native_kernels": native,
                        "error": f"{type(e).__name__}: {e}"[:120]})
        continue
      logging.info("bptt %-6s native kernels=%s: %.0f inner steps/s (%.1f s)", rule,
                   result["native_kernels"], result["inner_steps_per_second"],
                   time.perf_counter() - t0)
      results.append(result)
  return {"setup": BPTT_SETUP, "meta_steps": steps, "warmup_meta_steps": warmup,
          "results": results}
