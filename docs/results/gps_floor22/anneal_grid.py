"""Issue 22 follow-up: gps_general's initial policy with `anneal`, on gps-mnist's training family only.

For each (anneal, step_scale): the mean loss over the 400-step training horizon on the family's first 4
validation problems (the nets GPS validates on; as docs/results/gps_diagnosis/step_scale_grid_mnist.py), and
the mean batch loss over windows of 100 steps ending at steps 400, 1,000, 2,000, 3,000 and 4,000 (10x the
horizon) on the first 2 validation problems. The re-ship takes the setting with the lowest 400-step loss among
those whose 4,000-step windows keep decreasing. Nothing of the held-out suite or of the test nets is used.
Usage: python docs/results/gps_floor22/anneal_grid.py   # -> anneal_grid.txt
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll

# gps-mnist's training problem (its card's --problem_config).
CONFIG = {"activation": "relu", "batch_size": 64, "hidden_sizes": [48, 48], "horizon": 400,
          "init_scale": "glorot", "projection_dim": 48, "seed": 0}
GRID = [(None, 0.003)] + [(k, s) for k in (0.5, 1.0, 2.0) for s in (0.003, 0.01, 0.03)]
CHECKPOINTS, WINDOW = (400, 1000, 2000, 3000, 4000), 100


def curve(rule, meta, family, index, steps):
  tensors = family.sample("validation", index).tensors

  @tf.function
  def run(meta):
    losses, final, _ = unroll.unroll(rule, meta, family, tensors,
                                     unroll.init_state(rule, family, tensors), steps)
    return unroll.losses_after_updates(losses, final)
  return run(meta).numpy()


def main():
  family = problems.get("mnist_mlp", **CONFIG)
  for anneal, scale in GRID:
    rule = keras_l2o.rules.get("gps_general", step_scale=scale, anneal=anneal)
    meta = rule.init_meta_params(0)
    short = np.mean([curve(rule, meta, family, i, 400).mean() for i in range(4)])
    long = np.mean([curve(rule, meta, family, i, 4000) for i in range(2)], axis=0)
    windows = [float(long[c - WINDOW:c].mean()) for c in CHECKPOINTS]
    improving = all(b < a for a, b in zip(windows, windows[1:]))
    print(f"anneal {anneal}, step_scale {scale:g}: 400-step mean loss {short:.4f}; 4000 steps windows "
          + " ".join(f"{w:.4f}" for w in windows) + f"; finite {bool(np.isfinite(long).all())}; "
          f"keeps improving {improving}", flush=True)


if __name__ == "__main__":
  main()
