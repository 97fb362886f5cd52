"""Issue 22: what function the shipped `gps-mnist` policy computes.

Prints the mean |weight| of its LSTM input kernel, and its step for chosen
observations (r = relative loss change, n = g / (|g_prev| + 1), q = step-size
ratio) once the LSTM memory has settled at a zero observation: the slope in n
and the part of the step that does not depend on the gradient.

Usage: python docs/results/gps_diagnosis/probe_policy.py
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import pretrained


# Shipped as `gps-mnist` until issue 22's re-ship; now `gps-mnist-lstm` (the same files).
DIAGNOSED = "gps-mnist-lstm"


def main():
  rule = keras_l2o.rules.get("gps_lstm", **pretrained.card(DIAGNOSED)["rule"]["config"])
  meta = tf.nest.map_structure(tf.constant, pretrained.meta_params(DIAGNOSED))
  print("mean |lstm kernel| %.3g, mean |lstm bias| %.3g, mean |output kernel| %.3g" % tuple(
      float(np.abs(meta[a][b]).mean()) for a, b in (("lstm", "kernel"), ("lstm", "bias"),
                                                   ("output", "kernel"))))
  print("normalizer mean", meta["normalizer"]["mean"].numpy().round(4), "std",
        meta["normalizer"]["std"].numpy().round(4), "skip", meta["output"]["skip"].numpy().ravel())
  h = c = tf.zeros([1, rule.hidden_size])
  for _ in range(100):
    _, h, c = rule.cell(meta, tf.zeros([1, 3]), h, c)
  step = lambda r, n, q: float(rule.cell(meta, tf.constant([[r, n, q]], tf.float32), h, c)[0][0])  # noqa: E731
  print("step at r = n = q = 0: %.4g" % step(0, 0, 0))
  for n in (1e-4, 1e-2, 1.0):
    print("slope in n at n = %g: %.4f" % (n, (step(0, n, 0) - step(0, 0, 0)) / n))
  for q in (0.5, 1.0, 5.0):
    print("step at n = 0, q = %g: %.4g (slope in q %.4g)" % (q, step(0, 0, q),
                                                             (step(0, 0, q) - step(0, 0, 0)) / q))
  print("slope in r at r = 0.1: %.4g" % ((step(0.1, 0, 0) - step(0, 0, 0)) / 0.1))


if __name__ == "__main__":
  main()
