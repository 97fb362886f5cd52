"""Issue 22: gps_general's initial policy on logistic regression, by step_scale.

Mean sum of the losses over 100 steps on 10 validation problems, for each step_scale, and tuned sgd (lr 1.78).
Usage: python docs/results/gps_diagnosis/step_scale_grid.py
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll


def mean_sum(rule, meta, family, learning_rate=1.0):
  sums = []
  for i in range(10):
    tensors = family.sample("validation", i).tensors
    losses, final, _ = unroll.unroll(rule, meta, family, tensors,
                                     unroll.init_state(rule, family, tensors), 100,
                                     learning_rate=learning_rate)
    sums.append(float(tf.reduce_sum(unroll.losses_after_updates(losses, final))))
  return float(np.mean(sums))


def main():
  family = problems.get("logistic_regression")
  for scale in (0.01, 0.03, 0.1, 0.3):
    rule = keras_l2o.rules.get("gps_general", step_scale=scale)
    print(f"step_scale {scale}: {mean_sum(rule, rule.init_meta_params(0), family):.2f}")
  print(f"sgd lr 1.78: {mean_sum(keras_l2o.rules.get('sgd'), {}, family, 1.78):.2f}")


if __name__ == "__main__":
  main()
