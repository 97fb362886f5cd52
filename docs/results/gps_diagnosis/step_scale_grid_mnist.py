"""Issue 22: gps_general's initial policy on P2's MNIST net (gps-mnist's training family), by step_scale.

Mean loss over the 400-step horizon on the family's first 4 validation problems (the nets GPS validates on),
for each step_scale; the re-ship takes the best. Nothing of the held-out suite is used.
Usage: python docs/results/gps_diagnosis/step_scale_grid_mnist.py   # -> step_scale_grid_mnist.txt
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll

# gps-mnist's training problem (its card's --problem_config).
CONFIG = {"activation": "relu", "batch_size": 64, "hidden_sizes": [48, 48], "horizon": 400,
          "init_scale": "glorot", "projection_dim": 48, "seed": 0}


def mean_loss(rule, meta, family, steps=400, problems_count=4):
  means = []
  for i in range(problems_count):
    tensors = family.sample("validation", i).tensors
    losses, final, _ = unroll.unroll(rule, meta, family, tensors,
                                     unroll.init_state(rule, family, tensors), steps)
    means.append(float(tf.reduce_mean(unroll.losses_after_updates(losses, final))))
  return float(np.mean(means))


def main():
  family = problems.get("mnist_mlp", **CONFIG)
  for scale in (1e-3, 3e-3, 1e-2, 3e-2):
    rule = keras_l2o.rules.get("gps_general", step_scale=scale)
    print(f"step_scale {scale:g}: mean loss {mean_loss(rule, rule.init_meta_params(0), family):.4f}",
          flush=True)


if __name__ == "__main__":
  main()
