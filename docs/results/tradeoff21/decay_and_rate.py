"""Issue 21: does a differently shaped weight decay, or another peak rate, escape the trade-off?

Trains suite tasks with the shipped default `l2o-mlp-general-pes` on the baselines'
warm-up + cosine schedule (`keras_l2o.schedules.warmup_cosine`), through the suite's own
`keras_l2o.suite.training.run` (the same models, data, seeds and final-loss measure as the
suite), in two families of variants:

- `WD:P`: decoupled weight decay `WD * s(t)**P` per step, where `s(t)` is the schedule's
  value (peak 1). `P = 1` is Keras's `weight_decay=WD`; `P > 1` decays less and less as
  the rate falls, so that the end of training can fit again with the weights' structure
  the decay gave them.
- `G:WD:P[:D]`: the same decay, multiplied per variable by a gate that opens as that variable's
  gradient collapses (`GatedDecayOptimizer`): decay only what has been fitted.
- `L:PEAK`: no decay, the schedule's peak at `PEAK` instead of the card's 1.0.
- `F:D`: no decay; each variable's step is multiplied by `1 - gate` with the same gate over
  D decades (`FrozenOnCollapseOptimizer`): a tensor whose gradient collapsed stops moving,
  instead of being pushed on by steps normalised to unit size.

Each run appends one JSON line (task, variant, seed, final training loss, validation and
test loss) to OUT, so an interrupted run is resumed by running the same command: lines
already there are skipped. Seed 10000 is the suite's tuning seed, 0-2 are its test seeds.

Usage:
  python docs/results/tradeoff21/decay_and_rate.py --tasks=all --variants=0:1,3e-3:2,L:2 \
    --seeds=0,1,2 --out=OUT.jsonl
"""

import json
import math
import os

from absl import app
from absl import flags
import keras
import tensorflow as tf

import keras_l2o
from keras_l2o import schedules
from keras_l2o import suite
from keras_l2o.suite import metrics
from keras_l2o.suite import training

DEFAULT = "l2o-mlp-general-pes"
GATE_DECADES = 4.0  # G:WD:P: fully on once a gradient's mean square fell 4 decades below its peak

flags.DEFINE_string("tasks", "all", "Comma-separated suite task names, or 'all'.")
flags.DEFINE_list("variants", ["0:1"], "WD:P (decay WD * s(t)**P), G:WD:P (the same decay, "
                  "gated per variable by its gradient's collapse) or L:PEAK (peak rate).")
flags.DEFINE_list("seeds", ["10000"], "Seeds to run.")
flags.DEFINE_string("out", None, "JSON-lines output (appended; existing runs are skipped).")
flags.mark_flag_as_required("out")


class PowerDecayOptimizer(keras_l2o.LearnedOptimizer):
  """`LearnedOptimizer` whose decoupled decay per step is `weight_decay * s(t)**decay_power`."""

  def __init__(self, *args, decay_power=1.0, **kwargs):
    super().__init__(*args, **kwargs)
    self.decay_power = decay_power

  def _decay(self, variable):
    """The decay of `variable` at this step, before the rate's factor."""
    return tf.cast(self.weight_decay, variable.dtype)

  def _apply_weight_decay(self, variables):
    if self.weight_decay is None:
      return
    for variable in variables:
      if self._use_weight_decay(variable):
        rate = tf.cast(self.learning_rate, variable.dtype)
        variable.assign_sub(variable * self._decay(variable) * rate ** self.decay_power)


class GatedDecayOptimizer(PowerDecayOptimizer):
  """`PowerDecayOptimizer` whose decay of each variable is also multiplied by a gate in [0, 1].

  The gate opens as the variable's gradient collapses: with `power` an EMA (0.9) of the
  gradient's mean square and `peak` its largest value so far, the gate is
  `clip(log10(peak / power) / gate_decades, 0, 1)`, fully open once the mean square has
  fallen `gate_decades` decades below its peak (`G:WD:P:D` sets it to D; 4 by default). The
  decay then acts where a tensor has been fitted, and not while it is still being fitted.
  (The previous step's gate is used: Keras applies the decay before the update.)
  """

  def __init__(self, *args, gate_decades=GATE_DECADES, **kwargs):
    super().__init__(*args, **kwargs)
    self.gate_decades = gate_decades

  def build(self, var_list):
    super().build(var_list)
    self._gate_power, self._gate_peak = (
        [self.add_variable((), initializer="zeros", name=f"gate_{kind}_{i}")
         for i in range(len(var_list))] for kind in ("power", "peak"))

  def update_step(self, gradient, variable, learning_rate):
    """Updates the variable's gradient power (EMA of the mean square) and its peak, then steps."""
    index = self._get_variable_index(variable)
    square = tf.reduce_mean(tf.square(tf.cast(tf.convert_to_tensor(gradient), tf.float32)))
    power = 0.9 * self._gate_power[index] + 0.1 * square
    self._gate_power[index].assign(power)
    self._gate_peak[index].assign(tf.maximum(self._gate_peak[index], power))
    scale = self._step_scale(variable)
    super().update_step(gradient, variable,
                        learning_rate if scale is None else learning_rate * scale)

  def _step_scale(self, variable):
    """A factor of this step's rate, or None (here: the gate acts on the decay only)."""
    del variable

  def _gate(self, variable):
    """The gate of `variable` in [0, 1] (float32), from its statistics as they stand."""
    index = self._get_variable_index(variable)
    ratio = tf.math.divide_no_nan(self._gate_peak[index], self._gate_power[index])
    return tf.clip_by_value(tf.math.log(tf.maximum(ratio, 1.0)) / math.log(10.0) /
                            self.gate_decades, 0.0, 1.0)

  def _decay(self, variable):
    return super()._decay(variable) * tf.cast(self._gate(variable), variable.dtype)


class FrozenOnCollapseOptimizer(GatedDecayOptimizer):
  """No decay; each variable's step is multiplied by `1 - gate` (`GatedDecayOptimizer`'s gate).

  The gate is updated with this step's gradient before it is used, so a tensor whose gradient
  has fallen `gate_decades` decades below its peak takes no step at all.
  """

  def _gate(self, variable):
    """The gate, also fully open once the power underflowed to 0 (an exactly zero gradient).

    (`GatedDecayOptimizer`'s gate reads such a power as no collapse; it is kept as it is, so
    that its recorded runs stay reproducible.)
    """
    index = self._get_variable_index(variable)
    underflowed = tf.logical_and(self._gate_power[index] <= 0.0, self._gate_peak[index] > 0.0)
    return tf.where(underflowed, 1.0, super()._gate(variable))

  def _step_scale(self, variable):
    return 1.0 - self._gate(variable)


def parse_variant(text):
  """`(optimizer class, its keyword arguments, schedule peak)` of a variant's text."""
  parts = text.split(":")
  try:
    if parts[0] == "L" and len(parts) == 2:
      return PowerDecayOptimizer, {}, float(parts[1])
    if parts[0] == "F" and len(parts) == 2:
      return FrozenOnCollapseOptimizer, {"gate_decades": float(parts[1])}, 1.0
    if parts[0] == "G" and len(parts) in (3, 4):
      decades = float(parts[3]) if len(parts) == 4 else GATE_DECADES
      return GatedDecayOptimizer, {"weight_decay": float(parts[1]),
                                   "decay_power": float(parts[2]), "gate_decades": decades}, 1.0
    if len(parts) == 2:
      return PowerDecayOptimizer, {"weight_decay": float(parts[0]),
                                   "decay_power": float(parts[1])}, 1.0
  except ValueError:
    pass
  raise app.UsageError(f"--variants: {text!r} is none of WD:P, G:WD:P[:D], L:PEAK and F:D.")


def make_factory(optimizer_class, options, peak):
  default = keras_l2o.pretrained.get(DEFAULT)
  values = keras.tree.map_structure(keras.ops.convert_to_numpy, default.meta_params)
  options = dict(options, weight_decay=options.get("weight_decay") or None)  # 0: no decay

  def make(horizon):
    return optimizer_class(default.rule, meta_params=values,
                           learning_rate=schedules.warmup_cosine(peak, horizon), **options)
  return make


def done_runs(path):
  if not os.path.exists(path):
    return set()
  with open(path, encoding="utf-8") as f:
    return {(r["task"], r["variant"], r["seed"]) for r in map(json.loads, f)}


def main(argv):
  del argv
  tf.config.threading.set_intra_op_parallelism_threads(1)  # as the suite's --suite_threads=1
  tf.config.threading.set_inter_op_parallelism_threads(1)
  names = suite.names() if flags.FLAGS.tasks == "all" else flags.FLAGS.tasks.split(",")
  done = done_runs(flags.FLAGS.out)
  for name in names:
    spec = suite.get(name)
    for variant in flags.FLAGS.variants:
      make = make_factory(*parse_variant(variant))
      for seed in map(int, flags.FLAGS.seeds):
        if (name, variant, seed) in done:
          continue
        record = training.run(spec, seed, make)
        line = {"task": name, "variant": variant, "seed": seed,
                "final_train_loss": metrics.final_loss(record["curve"]),
                "validation_loss": record["validation"]["loss"],
                "test_loss": record["test"]["loss"], "seconds": record["seconds"]}
        with open(flags.FLAGS.out, "a", encoding="utf-8") as f:
          f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
  app.run(main)
