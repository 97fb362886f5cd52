"""Benchmark section: a sparse (`IndexedSlices`) gradient on a 1M-row embedding table.

Step time and peak memory of Keras's Adam and Adagrad against rules that update
only the touched rows (`sgd`, `adagrad`) and rules that densify (`adam`, `mlp`).
Run on its own (not by `keras-l2o-benchmark`): each optimizer in its own process.
"""

import keras
import numpy as np
import tensorflow as tf

from . import measure
from . import optimizers
from . import update

EMBEDDING_ROWS = 1_000_000
EMBEDDING_DIM = 16
EMBEDDING_BATCH = 1024  # rows touched per step (random, with repeats)
EMBEDDING_OPTIMIZERS = (optimizers.REFERENCE, "keras.Adagrad", "sgd", "adagrad", "adam", "mlp")


def embedding_benchmark(optimizer: str, *, rows: int = EMBEDDING_ROWS, dim: int = EMBEDDING_DIM,
                        batch: int = EMBEDDING_BATCH, repeats: int = 10, seed: int = 0) -> dict:
  """One `apply` of a sparse (`IndexedSlices`) gradient on an embedding table of `rows` x `dim`.

  `optimizer`: `optimizers.REFERENCE` (Keras's Adam), `"keras.Adagrad"`, or a rule name
  (`LearnedOptimizer`; `sgd` and `adagrad` update the touched rows only, the
  others densify). Run each optimizer in its own process for a meaningful
  peak memory: `python -c "from scripts.benchmark import embedding as b;
  print(b.embedding_benchmark('adagrad'))"`.

  Returns:
    median / p90 step time in ms and the process's peak resident memory
    (VmHWM) before building the optimizer and after the timed steps, in MB.
  """
  keras.backend.clear_session()
  rng = np.random.default_rng(seed)
  table = keras.Variable(0.01 * rng.normal(size=(rows, dim)).astype(np.float32), name="table")
  indices = tf.constant(rng.integers(0, rows, size=batch), tf.int64)
  values = tf.constant(1e-3 * rng.normal(size=(batch, dim)).astype(np.float32))
  gradient = tf.IndexedSlices(values, indices, tf.constant([rows, dim], tf.int64))
  rss_table = measure.maxrss_mb()
  if optimizer == "keras.Adagrad":
    opt = keras.optimizers.Adagrad(optimizers.HAND_DESIGNED_LEARNING_RATE)
  else:
    opt = optimizers.make_optimizer(optimizer)
  opt.build([table])

  @tf.function
  def step():
    opt.apply([gradient], [table])
    return opt.iterations.value

  times = measure.timed_calls(step, repeats, warmup=update.UPDATE_WARMUP_CALLS)
  return {"optimizer": optimizer, "rows": rows, "dim": dim, "touched_rows": batch,
          "repeats": repeats, "median_ms": float(np.median(times) * 1e3),
          "p90_ms": float(np.percentile(times, 90) * 1e3),
          "peak_rss_after_table_mb": rss_table, "peak_rss_mb": measure.maxrss_mb(),
          "rss_increase_mb": measure.maxrss_mb() - rss_table}
