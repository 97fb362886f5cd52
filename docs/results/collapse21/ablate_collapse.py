"""Issue 21: does a collapse21 candidate use its collapse input? Run it with that input's weights zeroed.

Loads a meta-training run's optimizer (`RUN@best`), sets the weights of the collapse input and
every input after it (the product input, if any) to zero, and trains suite tasks
with both versions on the warm-up + cosine schedule through the suite's own
`keras_l2o.suite.training.run` (its models, data, seeds and final-loss measure). Prints one JSON
line per run: task, seed, version ("as trained" or "collapse input zeroed"), final training loss
and test loss.

Usage:
  python docs/results/collapse21/ablate_collapse.py RUN@best TASK[,TASK...] [SEEDS, default 0,1,2]
"""

import json
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import schedules
from keras_l2o.rules import mlp
from keras_l2o import suite
from keras_l2o.suite import metrics
from keras_l2o.suite import training

def zeroed(rule, meta_params):
  """`meta_params` with zero weights for the collapse input and every input after it."""
  first = mlp.NUM_FEATURES + (rule.weight_scale is not None)  # the 3 features, the weight input
  params = keras.tree.map_structure(lambda v: np.array(keras.ops.convert_to_numpy(v)), meta_params)
  params["skip"][first:] = 0.0
  params["hidden"]["kernel"][first:] = 0.0
  return params


def main(argv):
  path, _, which = argv[1].partition("@")
  tasks = argv[2].split(",")
  seeds = [int(s) for s in (argv[3] if len(argv) > 3 else "0,1,2").split(",")]
  tf.config.threading.set_intra_op_parallelism_threads(1)  # as the suite's --suite_threads=1
  tf.config.threading.set_inter_op_parallelism_threads(1)
  trained = keras_l2o.load(path, which=which or "best")
  versions = {"as trained": keras.tree.map_structure(keras.ops.convert_to_numpy,
                                                       trained.meta_params),
              "collapse input zeroed": zeroed(trained.rule, trained.meta_params)}
  for task in tasks:
    spec = suite.get(task)
    for seed in seeds:
      for version, values in versions.items():
        def make(horizon, values=values):
          return keras_l2o.LearnedOptimizer(trained.rule, meta_params=values,
                                            learning_rate=schedules.warmup_cosine(1.0, horizon))
        record = training.run(spec, seed, make)
        print(json.dumps({"task": task, "seed": seed, "version": version,
                          "final_train_loss": metrics.final_loss(record["curve"]),
                          "test_loss": record["test"]["loss"]}), flush=True)


if __name__ == "__main__":
  main(sys.argv)
