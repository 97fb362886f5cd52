r"""Issue 22 diagnosis: what `gps-mnist`'s update does on suite tasks it was not trained on.

Trains one suite task (`--task`, its seed-0 build) for `--steps` steps with a custom loop
(the optimizer's own `apply`, the batch loss given by `set_loss`) and logs, at the steps in
`--at`: the batch loss, and over all parameters the RMS of the applied update u, of the
gradient g and of the parameters w, the mean of u (a drift shared by all coordinates),
cos(u, -g), and the share of u's energy orthogonal to -g.

Optimizers (`--optimizer`):
  gps-mnist            the shipped card;
  gps-mnist-odd        the same meta-parameters with the gradient-independent part of the
                       step removed (skip weights on the relative loss change and on the
                       step-size ratio set to 0, output bias set so that a zero gradient
                       gives a zero step): what is left is -0.832 g / (|g_prev| + 1);
  adam                 Keras Adam(1e-3);
  gps-general          the `gps_general` rule at its initial meta-parameters;
  a run directory      its `--which` meta-parameters (`keras_l2o.load`).

Usage:
  python docs/results/gps_diagnosis/diagnose.py --task=mnist_conv --optimizer=gps-mnist
"""

import json
import os

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import pretrained
from keras_l2o import suite

flags.DEFINE_string("task", "mnist_conv", "Suite task.")
flags.DEFINE_string("optimizer", "gps-mnist", "See the module docstring.")
flags.DEFINE_integer("steps", 400, "Training steps.")
flags.DEFINE_list("at", ["1", "10", "100", "200", "400"], "Steps at which to log.")
flags.DEFINE_string("rule_config", "{}", "JSON config of gps_general (with --optimizer=gps-general).")
flags.DEFINE_string("which", "final", "Which meta-parameters of a run directory.")
flags.DEFINE_float("learning_rate", 1.0, "Learning rate of the learned optimizers.")
FLAGS = flags.FLAGS


def odd_part(meta):
  """gps-mnist's meta-parameters without the part of the step that does not depend on g."""
  rule = keras_l2o.rules.get("gps_lstm")
  meta = tf.nest.map_structure(np.array, meta)
  meta["output"]["skip"][0, 0] = 0.0  # relative loss change
  meta["output"]["skip"][2, 0] = 0.0  # step-size ratio
  h = c = tf.zeros([1, rule.hidden_size])
  for _ in range(100):  # the LSTM's fixed point at zero input
    _, h, c = rule.cell(tf.nest.map_structure(tf.constant, meta), tf.zeros([1, 3]), h, c)
  meta["output"]["bias"][0] = 0.0
  mean, _, _ = rule.cell(tf.nest.map_structure(tf.constant, meta), tf.zeros([1, 3]), h, c)
  meta["output"]["bias"][0] = -float(mean[0]) / rule.output_scale
  return meta


# The gps_lstm policy this diagnosis is about: shipped as `gps-mnist` until issue 22's re-ship,
# now `gps-mnist-lstm` (the same files). The logs keep the name it had then.
DIAGNOSED = "gps-mnist-lstm"


def make_optimizer(name):
  if name == "gps-mnist":
    return pretrained.get(DIAGNOSED)
  if name == "gps-mnist-odd":
    return keras_l2o.LearnedOptimizer("gps_lstm", odd_part(pretrained.meta_params(DIAGNOSED)))
  if name == "adam":
    return keras.optimizers.Adam(1e-3)
  if os.path.isdir(name):  # a run directory (e.g. a GPS-trained gps_general)
    return keras_l2o.load(name, which=FLAGS.which)
  if name == "gps-general":
    rule = keras_l2o.rules.get("gps_general", **json.loads(FLAGS.rule_config))
    return keras_l2o.LearnedOptimizer(rule, rule.init_meta_params(0),
                                      learning_rate=FLAGS.learning_rate)
  raise ValueError(f"Unknown --optimizer {name!r}")


def rms(x):
  return float(tf.sqrt(tf.reduce_mean(tf.square(x))))


def main(argv):
  del argv
  keras.utils.set_random_seed(0)
  task = suite.get(FLAGS.task).build(0)
  model, loss_fn = task.model, keras.losses.get(task.loss)
  optimizer = make_optimizer(FLAGS.optimizer)
  variables = model.trainable_variables
  x, y = task.train
  rng = np.random.default_rng(0)

  @tf.function
  def gradients(xb, yb):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(loss_fn(yb, model(xb, training=True)))  # "mse" is per example
    return loss, tape.gradient(loss, variables)

  at = {int(s) for s in FLAGS.at}
  for step in range(1, FLAGS.steps + 1):
    idx = rng.integers(0, len(x), task.batch_size)
    loss, grads = gradients(x[idx], y[idx])
    before = [tf.identity(v) for v in variables]
    if getattr(optimizer, "rule", None) is not None and optimizer.rule.uses_loss:
      optimizer.set_loss(loss)
    optimizer.apply(grads, variables)
    if step in at or not np.isfinite(float(loss)):
      u = tf.concat([tf.reshape(v - b, [-1]) for v, b in zip(variables, before)], 0)
      g = tf.concat([tf.reshape(t, [-1]) for t in grads], 0)
      w = tf.concat([tf.reshape(b, [-1]) for b in before], 0)
      cos = float(-tf.reduce_sum(u * g) / (tf.norm(u) * tf.norm(g) + 1e-30))
      print(json.dumps({"task": FLAGS.task, "optimizer": FLAGS.optimizer, "step": step,
                        "loss": round(float(loss), 4), "rms_u": float(f"{rms(u):.3g}"),
                        "max_u": float(f"{float(tf.reduce_max(tf.abs(u))):.3g}"), "rms_g": float(f"{rms(g):.3g}"), "rms_w": float(f"{rms(w):.3g}"),
                        "mean_u": float(f"{float(tf.reduce_mean(u)):.3g}"),
                        "cos_u_neg_g": round(cos, 3),
                        "orthogonal_share": round(1 - max(cos, 0.0) ** 2, 3)}), flush=True)
      if not np.isfinite(float(loss)):
        break
  print(json.dumps({"task": FLAGS.task, "optimizer": FLAGS.optimizer,
                    "dead_relu_units": dead_relu_units(model, x[:512])}), flush=True)


def dead_relu_units(model, x):
  """Per ReLU layer: the share of its units (channels) that are 0 on every example of `x`."""
  shares = {}
  for layer in model.layers:
    if getattr(layer, "activation", None) is keras.activations.relu:
      probe = keras.Model(model.inputs, layer.output)
      out = np.asarray(probe(x, training=False)).reshape(-1, layer.output.shape[-1])
      shares[layer.name] = round(float(np.mean(np.all(out <= 0, axis=0))), 3)
  return shares


if __name__ == "__main__":
  app.run(main)
