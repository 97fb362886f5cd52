"""Issue 22: the shipped gps-mnist at 10x its training horizon on its training family.

Runs `pretrained:gps-mnist` (its rule, meta-parameters and learning rate) for 4,000 steps (10 x 400) on the
first 4 test nets of its card's problem family (P2's MNIST net) and prints the mean batch loss over windows of
100 steps, averaged over the nets, at the ends of steps 400, 1,000, 2,000, 3,000 and 4,000, and whether every
loss stayed finite. "Keeps improving" is read as: each of these window means is below the one before.
Usage: python docs/results/gps22_ship/long_horizon.py [NAME]   # -> long_horizon.txt
"""

import sys

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll

STEPS, WINDOW, NETS = 4000, 100, 4
CHECKPOINTS = (400, 1000, 2000, 3000, 4000)


def main(argv):
  name = argv[1] if len(argv) > 1 else "gps-mnist"
  card = keras_l2o.pretrained.card(name)
  optimizer = keras_l2o.pretrained.get(name)
  family = problems.get(card["trained_on"]["problem"], **card["trained_on"]["problem_config"])
  meta = tf.nest.map_structure(tf.convert_to_tensor, optimizer.meta_params)
  curves = []
  for i in range(NETS):
    tensors = family.sample("test", i).tensors
    losses, final, _ = unroll.unroll(optimizer.rule, meta, family, tensors,
                                     unroll.init_state(optimizer.rule, family, tensors), STEPS,
                                     learning_rate=card["learning_rate"])
    curves.append(unroll.losses_after_updates(losses, final).numpy())
  curves = np.stack(curves)
  windows = curves.reshape(NETS, STEPS // WINDOW, WINDOW).mean(axis=(0, 2))
  means = [float(windows[c // WINDOW - 1]) for c in CHECKPOINTS]
  print(f"{name}, {NETS} test nets of {card['trained_on']['problem']}, {STEPS} steps; all finite: "
        f"{bool(np.all(np.isfinite(curves)))}")
  for step, value in zip(CHECKPOINTS, means):
    print(f"mean batch loss over steps {step - WINDOW + 1}-{step}: {value:.4f}")
  print("each window below the one before:", all(b < a for a, b in zip(means, means[1:])))


if __name__ == "__main__":
  main(sys.argv)
