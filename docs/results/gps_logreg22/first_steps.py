"""The first steps of a GPS-trained run against gradient descent: losses and step lengths.

Usage (from the repository root):
  python docs/results/gps_logreg22/first_steps.py RUN_DIR [--split=test --count=100 --sgd=1.78]

Prints, for the run's policy and for gradient descent at the given rates, the mean objective
f(x_t) over the problems at t = 0..steps and the mean of |dx_t| / |g_t| (the effective
learning rate of the step from x_{t-1}).
"""

import argparse
import json

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib


def first_steps(rule, meta, family, tensors, steps, learning_rate):
  """f(x_0..x_steps) and |dx_t| / |g_t| for t = 1..steps."""
  state = unroll_lib.init_state(rule, family, tensors)
  params, rule_state = state.params, state.rule_state
  losses, ratios = [], []
  for t in range(steps):
    loss, grads = unroll_lib.losses_and_grads(family, tensors, params, family.batch(tensors, t))
    new, rule_state = unroll_lib.rule_steps(rule, meta, grads, params, rule_state,
                                            tf.constant(t, tf.int64), learning_rate, loss)
    flat = lambda vs: tf.concat([tf.reshape(v, [-1]) for v in vs], 0)  # noqa: E731
    losses.append(float(loss))
    ratios.append(float(tf.norm(flat(new) - flat(params)) / tf.norm(flat(grads))))
    params = new
  losses.append(float(family.loss(tensors, params, family.batch(tensors, steps))))
  return losses, ratios


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("runs", nargs="+")
  parser.add_argument("--problem", default="logistic_regression")
  parser.add_argument("--split", default="test")
  parser.add_argument("--count", type=int, default=100)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--sgd", default="1.78")
  parser.add_argument("--which", default="final")
  args = parser.parse_args()
  family = problems.get(args.problem)
  candidates = {}
  for run in args.runs:
    learned = keras_l2o.load(run, which=args.which)
    candidates[run] = (learned.rule, learned.meta_params, 1.0)
  sgd = keras_l2o.rules.get("sgd")
  for rate in args.sgd.split(","):
    candidates[f"sgd {rate}"] = (sgd, sgd.init_meta_params(0), float(rate))
  out = {"split": args.split, "count": args.count}
  for name, (rule, meta, rate) in candidates.items():
    results = [first_steps(rule, meta, family, family.sample(args.split, i).tensors, args.steps,
                           rate) for i in range(args.count)]
    losses = np.mean([r[0] for r in results], 0)
    ratios = np.mean([r[1] for r in results], 0)
    out[name] = {"f_t": np.round(losses, 4).tolist(),
                 "step_over_grad": np.round(ratios, 3).tolist()}
  print(json.dumps(out))


if __name__ == "__main__":
  main()
