r"""One-off probe of `general_tasks` with the `general` rule at its initial meta-parameters.

For every task (or `--tasks`): the forward-only inner steps per second of
`keras_l2o.unroll.unroll` in truncations of `--unroll_length` steps (what one
PES particle costs; no tape), and the mean training loss of the last 50 of
`--steps` steps for each reparameterisation scale in `--scales` (problem 0 of
the train split, its weights stored as w / s and evaluated at w * s).

Usage:

  python -m scripts.general_task_probe --steps=500 --scales=0.001,0.1,1,10,1000
"""

import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib

flags.DEFINE_list("tasks", None, "Task names (default: all).")
flags.DEFINE_integer("steps", 500, "Inner steps per run.")
flags.DEFINE_integer("unroll_length", 50, "Steps per compiled truncation.")
flags.DEFINE_list("scales", ["1"], "Reparameterisation scales s to try.")
FLAGS = flags.FLAGS


def _run(rule, meta, component, tensors, steps, length):
  run = tf.function(lambda t, s: unroll_lib.unroll(rule, meta, component, t, s, length))
  state = unroll_lib.init_state(rule, component, tensors)
  losses, seconds = [], 0.0
  for i in range(steps // length):
    start = time.perf_counter()
    chunk, _, state = run(tensors, state)
    chunk = chunk.numpy()
    if i:  # the first call traces
      seconds += time.perf_counter() - start
    losses.append(chunk)
  losses = np.concatenate(losses)
  return losses, (steps - length) / seconds


def main(argv):
  del argv
  rule = keras_l2o.rules.get("general")
  meta = rule.init_meta_params(0)
  family = problems.get("general_tasks", seed=0, tasks=FLAGS.tasks)
  for k, component in enumerate(family.components):
    tensors = dict(family.sample("train", k).tensors)
    row = []
    for scale in (float(s) for s in FLAGS.scales):
      scaled = dict(tensors, reparam_scale=tf.constant(scale, tf.float32))
      for i in range(len(component.init_params(tensors))):
        scaled[f"param_{i}"] = tensors[f"param_{i}"] / scale
      losses, rate = _run(rule, meta, component, scaled, FLAGS.steps, FLAGS.unroll_length)
      row.append(f"s={scale:g}: {np.mean(losses[-50:]):.4f}")
    logging.info("%-42s params %6d  %.0f inner steps/s  first %.3f  last-50 loss %s",
                 component.name, component.num_parameters(), rate, losses[0], "  ".join(row))


if __name__ == "__main__":
  app.run(main)
