"""Issue 22 follow-up: why the shipped gps-mnist does not keep improving at 10x its horizon.

Runs a gps_general policy (default: pretrained:gps-mnist) for 4,000 steps on the first test net of its card's
training family (P2's MNIST net) and prints, every 400 steps, averaged over the last 100 steps: the batch loss,
and per tensor the magnitude feature rho_m, the magnitude s, the update RMS, the weight RMS, the gradient RMS and
the signal-to-noise channel rms(m_0.9 / sqrt(v)) and, with `anneal`, psi = log(rms g / peak).
Usage: python docs/results/gps_floor22/diagnose_magnitude.py [NAME]   # -> diagnose_magnitude_NAME.txt
"""

import sys

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll
from keras_l2o.rules import general_features as gf
from keras_l2o.rules import gps_general

STEPS, EVERY, WINDOW = 4000, 400, 100


def main(argv):
  name = argv[1] if len(argv) > 1 else "gps-mnist"
  card = keras_l2o.pretrained.card(name)
  optimizer = keras_l2o.pretrained.get(name)
  rule = optimizer.rule
  family = problems.get(card["trained_on"]["problem"], **card["trained_on"]["problem_config"])
  meta = tf.nest.map_structure(tf.convert_to_tensor, optimizer.meta_params)
  tensors = family.sample("test", 0).tensors
  state = unroll.init_state(rule, family, tensors)

  @tf.function
  def one(params, rstate, step):
    loss, grads = unroll.losses_and_grads(family, tensors, params, family.batch(tensors, step))
    new_p, new_s, rows = [], [], []
    for g, p, s in zip(grads, params, rstate):
      axis = list(range(g.shape.rank))
      feats, ns = gps_general.observe(g, s, axis)
      upd = rule.step(meta, feats, axis) * card["learning_rate"]
      mag = tf.reshape(rule.magnitude(meta, feats, axis), [])
      rho = tf.reduce_mean(feats[..., gps_general.NUM_DIRECTION_FEATURES])
      psi = tf.reduce_mean(feats[..., -1]) if rule.anneal is not None else tf.constant(0.0)
      snr = tf.sqrt(tf.reduce_mean(tf.square(ns.momentum[..., 0] * gf.floored_rsqrt(ns.velocity, axis))))
      rms = lambda x: tf.sqrt(tf.reduce_mean(tf.square(x)))
      rows.append(tf.stack([rho, mag, rms(upd), rms(p + upd), rms(g), snr, psi]))
      new_p.append(p + upd)
      new_s.append(ns)
    return loss, new_p, new_s, tf.stack(rows)

  params, rstate = state.params, state.rule_state
  losses, stats = [], []
  for t in range(STEPS):
    loss, params, rstate, rows = one(params, rstate, tf.constant(t, tf.int64))
    losses.append(float(loss))
    stats.append(rows.numpy())
  stats = np.stack(stats)
  print(f"{name}: 1 test net of {card['trained_on']['problem']}, {STEPS} steps, "
        "columns per tensor: rho_m, s, update RMS, weight RMS, grad RMS, rms(m_0.9/sqrt(v)), psi (0 without "
        "anneal)")
  for end in range(EVERY, STEPS + 1, EVERY):
    w = stats[end - WINDOW:end].mean(0)
    print(f"steps {end - WINDOW + 1}-{end}: loss {np.mean(losses[end - WINDOW:end]):.4f}")
    for i, row in enumerate(w):
      print(f"  tensor {i}: " + " ".join(f"{x:.3g}" for x in row))


if __name__ == "__main__":
  main(sys.argv)
