"""Issue 22, six settings: per-tensor step statistics of gps-mnist and tuned Adam on one test net of a setting.

Runs the shipped gps-mnist (or NAME) and Adam at issue 6's tuned rate for 800 steps on test net 0 of one of
run_six.sh's settings and prints, averaged over windows of 50 steps: the batch loss of each, and per tensor for
gps-mnist the magnitude s, psi = log(rms g / peak), its update RMS and Adam's update RMS, and the weight RMS.
Usage: python docs/results/six22/diagnose_six.py SETTING [NAME]   # -> diagnose_SETTING.txt
(diagnose_SETTING.txt were run with the card before `fan_in_reference`; diagnose_SETTING_fan_in.txt after.)
"""

import sys

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll
from keras_l2o.rules import gps_general

STEPS, WINDOW = 800, 50
P2 = {"batch_size": 64, "horizon": 400, "projection_dim": 48, "activation": "relu", "init_scale": "glorot",
      "seed": 0}
NET = {"hidden_sizes": [48, 48], "activation": "relu", "init_scale": "glorot", "seed": 0}
SETTINGS = {  # run_six.sh's problem configs and issue 6's tuned Adam rates
    "mnist_800": ({**P2, "hidden_sizes": [48, 48]}, 0.03),
    "mnist_200x200": ({**P2, "hidden_sizes": [200, 200]}, 0.01),
    "mnist_batch10": ({**P2, "batch_size": 10, "hidden_sizes": [48, 48]}, 0.01),
    "digits": ({"dataset": "digits", "batch_size": 64, **NET}, 0.03),
    "breast_cancer": ({"dataset": "breast_cancer", "batch_size": 64, **NET}, 0.03),
    "wine": ({"dataset": "wine", "batch_size": 64, **NET}, 0.03),
}
rms = lambda x: tf.sqrt(tf.reduce_mean(tf.square(x)))


def trace(rule, meta, family, tensors, lr, gps):
  state = unroll.init_state(rule, family, tensors)

  @tf.function
  def one(params, rstate, step):
    loss, grads = unroll.losses_and_grads(family, tensors, params, family.batch(tensors, step))
    new_p, new_s, rows = [], [], []
    for g, p, s in zip(grads, params, rstate):
      axis = list(range(g.shape.rank))
      if gps:
        feats, ns = gps_general.observe(g, s, axis)
        upd = rule.step(meta, feats, axis) * lr * rule.width_scale(g.shape)  # as `apply`
        mag = tf.reshape(rule.magnitude(meta, feats, axis), [])
        psi = tf.reduce_mean(feats[..., -1]) if rule.anneal is not None else tf.constant(0.0)
      else:
        upd, ns = rule.apply(meta, g, p, s, step + 1)
        upd, mag, psi = upd * lr, tf.constant(0.0), tf.constant(0.0)
      rows.append(tf.stack([mag, psi, rms(upd), rms(p + upd)]))
      new_p.append(p + upd)
      new_s.append(ns)
    return loss, new_p, new_s, tf.stack(rows)

  params, rstate, losses, stats = state.params, state.rule_state, [], []
  for t in range(STEPS):
    loss, params, rstate, rows = one(params, rstate, tf.constant(t, tf.int64))
    losses.append(float(loss))
    stats.append(rows.numpy())
  return np.array(losses), np.stack(stats)


def main(argv):
  setting, name = argv[1], (argv[2] if len(argv) > 2 else "gps-mnist")
  config, adam_lr = SETTINGS[setting]
  family = problems.get("mnist_mlp", **config)
  tensors = family.sample("test", 0).tensors
  opt = keras_l2o.pretrained.get(name)
  meta = tf.nest.map_structure(tf.convert_to_tensor, opt.meta_params)
  g_loss, g_st = trace(opt.rule, meta, family, tensors, keras_l2o.pretrained.card(name)["learning_rate"], True)
  adam = keras_l2o.rules.get("adam")
  a_loss, a_st = trace(adam, adam.init_meta_params(0), family, tensors, adam_lr, False)
  print(f"{setting}, test net 0, {STEPS} steps; {name} vs adam@{adam_lr}; per tensor: "
        "s, psi, update RMS (gps), update RMS (adam), weight RMS (gps), weight RMS (adam)")
  for end in range(WINDOW, STEPS + 1, WINDOW):
    sl = slice(end - WINDOW, end)
    print(f"steps {end - WINDOW + 1}-{end}: loss gps {g_loss[sl].mean():.4f} adam {a_loss[sl].mean():.4f}")
    g, a = g_st[sl].mean(0), a_st[sl].mean(0)
    for i in range(len(g)):
      print(f"  tensor {i}: s {g[i, 0]:.3g} psi {g[i, 1]:.3g} upd {g[i, 2]:.3g} / {a[i, 2]:.3g} "
            f"w {g[i, 3]:.3g} / {a[i, 3]:.3g}")


if __name__ == "__main__":
  main(sys.argv)
