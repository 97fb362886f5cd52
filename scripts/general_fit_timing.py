r"""One-off `model.fit` step time of the `general` rule (configurations of it) against Adam.

Mimics the fit timing of `scripts/benchmark/fit.py` (the 64-h-h-10 ReLU MLP of about
`--params` parameters, batch 128 of synthetic data, per-batch wall times from
`on_train_batch_begin/end`, median after `--warmup` steps, jit off) for
`keras.optimizers.Adam(1e-3)` and `LearnedOptimizer(rules.get("general",
**config))` for every JSON config in `--configs`, rounds interleaved so that
load from other processes hits every optimizer alike. Logs each median and its
ratio to Adam's. A config's `"jit_rule"` key is the optimizer's `jit_rule`
(default `"auto"`: the native kernel where it is built; `false`: the reference
TF-op path), its other keys the rule's. `--muon` adds `keras.optimizers.Muon()` (Newton–Schulz on
every 2-D kernel, as the `general` rule's default), for scale.

Usage:

  python -m scripts.general_fit_timing --params=1000000 \
      --configs='[{}, {"orthogonalize": false}]'
"""

import json
import math
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np

import keras_l2o

flags.DEFINE_integer("params", 1_000_000, "Approximate parameters of the 64-h-h-10 MLP.")
flags.DEFINE_integer("steps", 60, "Measured steps per round.")
flags.DEFINE_integer("warmup", 10, "Unmeasured steps per round.")
flags.DEFINE_integer("rounds", 2, "Interleaved rounds over the optimizers.")
flags.DEFINE_string("configs", "[{}]", "JSON list of general-rule configs.")
flags.DEFINE_bool("muon", False, "Also time keras.optimizers.Muon (default arguments).")
FLAGS = flags.FLAGS


class _Timer(keras.callbacks.Callback):

  def __init__(self):
    super().__init__()
    self.times, self._begin = [], None

  def on_train_batch_begin(self, batch, logs=None):
    self._begin = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    self.times.append(time.perf_counter() - self._begin)


def _width(params):
  a = 64 + 10 + 2
  return int(round((-a + math.sqrt(a * a + 4 * (params - 10))) / 2))


def _time(make_optimizer, width, steps, warmup):
  keras.backend.clear_session()
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(width, activation="relu"),
                            keras.layers.Dense(width, activation="relu"), keras.layers.Dense(10)])
  rng = np.random.default_rng(0)
  x = rng.normal(size=(128 * (steps + warmup), 64)).astype(np.float32)
  y = rng.integers(0, 10, size=len(x)).astype(np.int32)
  model.compile(optimizer=make_optimizer(), jit_compile=False,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  timer = _Timer()
  model.fit(x, y, batch_size=128, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
  return timer.times[warmup:], model.count_params()


def main(argv):
  del argv
  width = _width(FLAGS.params)
  optimizers = {"adam_1e-3": lambda: keras.optimizers.Adam(1e-3)}
  if FLAGS.muon:
    optimizers["keras.Muon"] = keras.optimizers.Muon
  for config in json.loads(FLAGS.configs):
    rule_config = dict(config)
    jit_rule = rule_config.pop("jit_rule", "auto")  # the optimizer's path, not a rule argument
    optimizers[f"general {json.dumps(config)}"] = (
        lambda c=rule_config, j=jit_rule: keras_l2o.LearnedOptimizer(
            keras_l2o.rules.get("general", **c), jit_rule=j))
  times = {name: [] for name in optimizers}
  for _ in range(FLAGS.rounds):
    for name, make in optimizers.items():
      measured, params = _time(make, width, FLAGS.steps, FLAGS.warmup)
      times[name] += measured
  adam = float(np.median(times["adam_1e-3"]))
  for name, values in times.items():
    median = float(np.median(values))
    logging.info("%-40s params %d  median %.2f ms  ratio to Adam %.2fx", name, params,
                 median * 1e3, median / adam)


if __name__ == "__main__":
  app.run(main)
