"""Section: the update alone, `optimizer.apply` on one variable, in ns per parameter.

For the default path of every optimizer (named in the results: `native`,
`xla` or `reference`, see `keras_l2o.step_paths`) and, for rules with a
path besides the reference, also for the reference (`jit_rule=False`).
"""

import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from keras_l2o import step_paths
from . import measure
from . import optimizers

UPDATE_WARMUP_CALLS = 3


def update_benchmark(optimizer: str, num_params: int, *, repeats: int, jit: bool, seed: int,
                     jit_rule="auto") -> dict:
  """Times `optimizer.apply` alone on one variable of `num_params` floats."""
  keras.backend.clear_session()
  rng = np.random.default_rng(seed)
  variable = keras.Variable(0.1 * rng.normal(size=(num_params,)).astype(np.float32),
                            name="benchmark_variable")
  gradient = tf.constant(1e-3 * rng.normal(size=(num_params,)).astype(np.float32))
  opt = optimizers.make_optimizer(optimizer, jit_rule)
  opt.build([variable])
  paths = {}

  @tf.function(jit_compile=jit)
  def step():
    # The path the optimizer takes for this variable, seen from inside the trace (XLA or not).
    paths["path"] = ("keras" if optimizer == optimizers.REFERENCE
                     else step_paths.step_path(jit_rule, opt.rule, variable))
    opt.apply([gradient], [variable])
    return opt.iterations.value

  first_call = measure.timed_calls(step, 1)[0]
  times = measure.timed_calls(step, repeats, warmup=UPDATE_WARMUP_CALLS - 1)
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


def update_section(names, update_params: int, jit_modes, *, repeats: int, seed: int):
  """`update_benchmark` of every optimizer and jit mode, and of the reference paths.

  Returns:
    `(results, reference_path)`: the default paths' results, each with
    `ratio_to_adam`, and the `jit_rule=False` results of the rules with a fast path.
  """
  results, reference_path = [], []
  for jit in jit_modes:
    for name in names:
      t0 = time.perf_counter()
      result = update_benchmark(name, update_params, repeats=repeats, jit=jit, seed=seed)
      logging.info("update %-10s jit=%-5s %s params: %.3f ns/param (%.1f s)", name, jit,
                   f"{update_params:,}", result["median_ns_per_param"], time.perf_counter() - t0)
      results.append(result)
  for r in results:
    ref = next(a for a in results
               if a["optimizer"] == optimizers.REFERENCE and a["jit"] == r["jit"])
    r["ratio_to_adam"] = r["median_ns_per_param"] / ref["median_ns_per_param"]
  for name in names:
    if optimizers.has_fast_path(name):
      result = update_benchmark(name, update_params, repeats=repeats, jit=False, seed=seed,
                                jit_rule=False)
      logging.info("update %-10s reference path: %.3f ns/param", name,
                   result["median_ns_per_param"])
      reference_path.append(result)
  return results, reference_path
