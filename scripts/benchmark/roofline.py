"""Section: the roofline of every rule's update: flop bound, memory bound, measured time.

Flops per coordinate from TensorFlow's registered op statistics of one traced
`rule.apply`, the machine's measured matmul rate and memory bandwidth, and
how far each measured update (the `update` section's) is from the bounds.
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from . import measure
from . import optimizers

MATMUL_SIZE = 4096
BANDWIDTH_FLOATS = 1 << 26  # 256 MB each way
FLOP_TRACE_SIZE = 4096


def rule_flops(name: str, size: int = FLOP_TRACE_SIZE) -> dict:
  """Flops per coordinate of one step of rule `name` (Adam's rule for the reference).

  Traces `rule.apply` on a vector of `size` coordinates and adds TensorFlow's
  registered `flops` statistics of every op (2 k per output of a matmul with
  inner size k, 1 per element of arithmetic ops). Ops without registered
  statistics (sigmoid, tanh, relu, sqrt, select, ...) count 0, so this is a
  lower bound dominated by the matmuls.
  """
  from tensorflow.python.framework import ops as tf_ops  # pylint: disable=g-import-not-at-top
  rule = keras_l2o.rules.get("adam" if name == optimizers.REFERENCE else name)
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


def matmul_rate(size: int = MATMUL_SIZE, repeats: int = 10) -> dict:
  """The machine's float32 matmul rate: `size` x `size` times `size` x `size`, in GFLOP/s."""
  a = tf.random.stateless_normal([size, size], seed=[0, 1])
  b = tf.random.stateless_normal([size, size], seed=[0, 2])
  matmul = tf.function(tf.matmul)
  times = measure.timed_calls(lambda: matmul(a, b), repeats, warmup=1)
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

  times = measure.timed_calls(step, repeats, warmup=1)
  moved = 12.0 * floats
  return {"floats": floats, "repeats": repeats, "best_gb_per_s": moved / min(times) / 1e9,
          "median_gb_per_s": moved / float(np.median(times)) / 1e9}


def bytes_per_coordinate(name: str) -> float:
  """Least memory traffic of one update per coordinate: the state and the
  variable read and written, the gradient read (float32)."""
  return 4.0 * (2 * optimizers.state_floats_per_parameter(name) + 2 + 1)


def roofline_section(names, update_results) -> dict:
  """Flops, bounds and the measured jit-off updates of `names` (errors recorded per rule)."""
  rate = matmul_rate()
  bandwidth = memory_bandwidth()
  entries = []
  for name in names:
    try:
      entry = {"optimizer": name, **rule_flops(name)}
    except Exception as e:  # pylint: disable=broad-except
      entries.append({"optimizer": name, "error": f"{type(e).__name__}: {e}"[:120]})
      continue
    entry["bound_ns_per_param"] = entry["flops_per_coordinate"] / rate["best_gflops"]
    entry["bytes_per_coordinate"] = bytes_per_coordinate(name)
    entry["memory_bound_ns_per_param"] = (entry["bytes_per_coordinate"]
                                          / bandwidth["best_gb_per_s"])
    update = next((r for r in update_results if r["optimizer"] == name and not r["jit"]), None)
    if update:
      entry["update_ns_per_param"] = update["median_ns_per_param"]
      entry["times_bound"] = update["median_ns_per_param"] / max(entry["bound_ns_per_param"],
                                                                 1e-12)
      entry["times_roofline"] = update["median_ns_per_param"] / max(
          entry["bound_ns_per_param"], entry["memory_bound_ns_per_param"], 1e-12)
    entries.append(entry)
  return {"matmul": rate, "memory": bandwidth, "trace_size": FLOP_TRACE_SIZE, "rules": entries}
