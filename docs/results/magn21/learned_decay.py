"""Issue 21: the decay an `mlp` rule with the weight input (`weight_scale`) has learned.

The update's slope in the parameter w, `-d update / d w`, is a per-step decay rate: the
rule shrinks w by about `rate * w` per step (times the optimizer's learning rate), as
Keras's `weight_decay=rate` would. With the weight input `f_3 = weight_scale * w` it is
`-step_scale * weight_scale * (skip_3 + sum_j W2_j [h_j > 0] W1_3j)`. It depends on the
other inputs through the active hidden units, so this script draws them (g / rms ~ N(0, 1),
the two normalised momenta ~ U(-1, 1), w ~ N(0, 0.1^2)) and prints the rate's mean and
10th / 90th percentiles. A rule with the collapse input (`collapse_decades`, issue 21's
`collapse21` runs) gets the rate at several fixed values of that input (the same for every
coordinate of a tensor): 0 (still fitting) to 1.5 (its gradient fell 1.5 x collapse_decades
decades).

Usage: python docs/results/magn21/learned_decay.py RUN_DIR@best [RUN_DIR@final ...]
"""

import sys

import numpy as np
import tensorflow as tf

import keras_l2o


COLLAPSE_VALUES = (0.0, 0.25, 0.5, 1.0, 1.5)


def decay_rates(optimizer, count=100_000, seed=0, collapse=0.0):
  """The per-step decay rates at `count` drawn inputs (the collapse input, if any, at `collapse`)."""
  rule = optimizer.rule
  params = tf.nest.map_structure(np.asarray, optimizer.meta_params)
  rng = np.random.default_rng(seed)
  columns = [rng.normal(size=count), rng.uniform(-1, 1, count), rng.uniform(-1, 1, count),
             rule.weight_scale * rng.normal(0.0, 0.1, count)]
  # d inputs / d (weight_scale * w): 1 for the weight input, `collapse` for the product.
  direction = [0.0, 0.0, 0.0, 1.0]
  if getattr(rule, "collapse_decades", None) is not None:
    columns.append(np.full(count, collapse))
    direction.append(0.0)
  if getattr(rule, "gated_weight", None):  # the product input collapse * weight_scale * w
    columns.append(columns[3] * collapse)
    direction.append(collapse)
  inputs, direction = np.stack(columns, axis=1), np.array(direction)
  active = (inputs @ params["hidden"]["kernel"] + params["hidden"]["bias"] > 0).astype(float)
  slope = params["skip"][:, 0] @ direction + (active * (direction @ params["hidden"]["kernel"])) @ (
      params["output"]["kernel"][:, 0])
  return -rule.step_scale * rule.weight_scale * slope


def main(entries):
  for entry in entries:
    path, _, which = entry.partition("@")
    optimizer = keras_l2o.load(path, which=which or "final")
    with_collapse = getattr(optimizer.rule, "collapse_decades", None) is not None
    for collapse in COLLAPSE_VALUES if with_collapse else (0.0,):
      rates = decay_rates(optimizer, collapse=collapse)
      at = f" at collapse input {collapse:g}" if with_collapse else ""
      print(f"{entry}{at}: per-step decay rate mean {rates.mean():.2e}, 10th percentile "
            f"{np.percentile(rates, 10):.2e}, 90th {np.percentile(rates, 90):.2e}")


if __name__ == "__main__":
  main(sys.argv[1:])
