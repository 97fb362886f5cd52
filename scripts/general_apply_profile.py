r"""Where one `apply` of the `general` rule spends its time on a square kernel (TF ops vs the native kernel).

Times, each as its own `tf.function` on a `--size` x `--size` float32 matrix
with a random gradient, parameter and one step of state, the parts of
`GeneralRule.apply`: the new state, the normalised channels, `direction` on TF
ops and by the native kernel (`keras_l2o.native.general_rule`), Newton–Schulz,
one matmul of its size, `finish`, and `apply` end to end on both paths, for
the default rule and `orthogonalize=False`. Logs the median of `--repeats`
calls of each (after one warm-up call) as a Markdown table row.

Usage:

  python -m scripts.general_apply_profile --size=950 --repeats=5
"""

import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o.native import general_rule as native_general
from keras_l2o.rules import general_features as gf
from keras_l2o.rules import newton_schulz

flags.DEFINE_integer("size", 950, "Rows and columns of the kernel.")
flags.DEFINE_integer("repeats", 5, "Timed calls per part (median).")
FLAGS = flags.FLAGS


def _median_ms(function, args, repeats):
  tf.nest.map_structure(lambda t: t.numpy(), function(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), function(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def _parts(rule, plain, meta, state):
  f = tf.function
  parts = [
      ("TF: new state", f(lambda g, v: gf.update_matrix_state(g, state))),
      ("TF: new state + normalised channels",
       f(lambda g, v: gf.normalised_channels(g, v, gf.update_matrix_state(g, state)))),
      ("TF: direction", f(lambda g, v: rule.direction(meta, g, v, state, 3))),
      ("Newton-Schulz", f(lambda g, v: newton_schulz.orthogonalise(g, rule.ns_steps))),
      ("one matmul", f(lambda g, v: tf.matmul(g, v))),
      ("finish without Newton-Schulz", f(lambda g, v: plain.finish(g))),
      ("TF: apply, default", f(lambda g, v: rule.apply(meta, g, v, state, 3))),
      ("TF: apply, orthogonalize=False", f(lambda g, v: plain.apply(meta, g, v, state, 3))),
  ]
  if native_general.supports(rule, tf.float32):
    parts += [
        ("native: direction", f(lambda g, v: native_general.direction(rule, meta, g, v, state, 3))),
        ("native: apply, default", f(lambda g, v: native_general.apply(rule, meta, g, v, state, 3))),
        ("native: apply, orthogonalize=False",
         f(lambda g, v: native_general.apply(plain, meta, g, v, state, 3))),
    ]
  else:
    logging.warning("The native kernel is not built: only the TF-op parts are timed.")
  return parts


def main(argv):
  del argv
  rule = keras_l2o.rules.get("general")
  plain = keras_l2o.rules.get("general", orthogonalize=False)
  meta = rule.init_meta_params(0)
  rng = np.random.default_rng(0)
  shape = (FLAGS.size, FLAGS.size)
  var, grad = (tf.constant(rng.normal(size=shape), tf.float32) for _ in range(2))
  state = gf.update_matrix_state(grad, rule.init_state(var))
  for name, function in _parts(rule, plain, meta, state):
    logging.info("| %s | %.1f |", name, _median_ms(function, (grad, var), FLAGS.repeats))


if __name__ == "__main__":
  app.run(main)
