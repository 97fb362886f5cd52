"""The shipped pretrained optimizers: registry, cards, and use in model.compile."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import datasets
from keras_l2o import problems

SHIPPED = ("gps-mnist", "gps-mnist-lstm", "l2l-mnist", "l2l-neural-art", "l2l-quadratic",
           "l2o-mlp-factored", "l2o-mlp-general", "l2o-mlp-general-pes")
# Meta-trained on TensorFlow ops, before the native kernels existed.
BEFORE_NATIVE_KERNELS = ("l2l-mnist", "l2l-quadratic")


class PretrainedTest(tf.test.TestCase):

  def test_names_list_the_shipped_optimizers(self):
    self.assertEqual(keras_l2o.pretrained.names(), sorted(SHIPPED))
    self.assertEqual(keras_l2o.pretrained.DEFAULT, "l2o-mlp-general-pes")

  def test_cards_say_what_how_long_and_where_weak(self):
    for name in SHIPPED:
      card = keras_l2o.pretrained.card(name)
      self.assertEqual(card["name"], name)
      self.assertGreater(card["meta_training"]["steps"], 0)
      self.assertIn(card["trained_on"]["problem"].split(",")[0],
                    problems.names())
      self.assertGreater(len(card["weaknesses"]), 40)
      self.assertTrue(card["command"].startswith("keras-l2o-meta-train "))
      self.assertIn("--seed=0", card["command"])
      # The lstm optimizers trained on TensorFlow ops, before the native kernels, must say so
      # in their command to reproduce bit for bit; later ones say which they used.
      if card["rule"]["name"] == "lstm" and "--trainer=bptt" in card["command"]:
        self.assertIn("--nonative_kernels" if name in BEFORE_NATIVE_KERNELS
                      else "--native_kernels", card["command"])
      # Meta-training improved on the initial meta-parameters.
      self.assertLess(card["meta_training"]["best_validation_loss"],
                      card["meta_training"]["first_validation_loss"])

  def test_meta_params_differ_from_the_initial_ones(self):
    for name in SHIPPED:
      optimizer = keras_l2o.pretrained.get(name)
      initial = optimizer.rule.init_meta_params(0)
      moved = max(np.abs(a.numpy() - np.asarray(b)).max() for a, b in zip(
          tf.nest.flatten(optimizer.meta_params), tf.nest.flatten(initial)))
      self.assertGreater(moved, 1e-3, msg=name)

  def test_default_trains_a_digits_model_in_model_compile(self):
    data = datasets.digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras_l2o.pretrained.get(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.x[:1024], data.y[:1024], batch_size=64, epochs=3, verbose=0)
    losses = history.history["loss"]
    self.assertTrue(all(np.isfinite(losses)))
    self.assertLess(losses[-1], 0.7 * losses[0])

  def test_low_memory_default_trains_with_two_floats_of_state_per_weight(self):
    data = datasets.digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="relu"),
                              keras.layers.Dense(10)])
    optimizer = keras_l2o.pretrained.get("l2o-mlp-factored")
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(data.x[:1024], data.y[:1024], batch_size=64, epochs=3, verbose=0)
    losses = history.history["loss"]
    self.assertTrue(all(np.isfinite(losses)))
    self.assertLess(losses[-1], 0.7 * losses[0])
    kernels = [v for v in model.trainable_variables if len(v.shape) == 2]
    for kernel in kernels:
      floats = sum(int(np.prod(s.shape)) for s in optimizer.state_for(kernel))
      rows, cols = kernel.shape
      self.assertEqual(floats, 2 * rows * cols + rows + cols)
    total = sum(int(np.prod(s.shape)) for v in model.trainable_variables
                for s in optimizer.state_for(v))
    weights = model.count_params()
    self.assertLess(total, 2.1 * weights)  # the mlp rule's state would be 3 x weights

  def test_gps_mnist_trains_unseen_datasets_for_twice_its_horizon(self):
    """Issue 6: outside its training set, 800 steps (2 x 400), every loss finite, end below start."""
    horizon = 2 * keras_l2o.pretrained.card("gps-mnist")["trained_on"]["problem_config"]["horizon"]
    self.assertEqual(horizon, 800)
    for name in ("wine", "breast_cancer", "digits"):
      data = datasets.load(name)
      keras.utils.set_random_seed(0)
      model = keras.Sequential([keras.Input(data.x.shape[1:]),
                                keras.layers.Dense(48, activation="relu"),
                                keras.layers.Dense(48, activation="relu"),
                                keras.layers.Dense(data.num_classes)])
      model.compile(optimizer=keras_l2o.pretrained.get("gps-mnist"),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
      first = model.evaluate(data.x, data.y, verbose=0)
      batches = tf.data.Dataset.from_tensor_slices((data.x, data.y)).shuffle(
          len(data.x), seed=0).repeat().batch(64)
      losses = []
      callback = keras.callbacks.LambdaCallback(
          on_train_batch_end=lambda batch, logs: losses.append(logs["loss"]))
      model.fit(batches, steps_per_epoch=horizon // 4, epochs=4, verbose=0, shuffle=False,
                callbacks=[callback])
      self.assertLen(losses, horizon)
      self.assertTrue(np.all(np.isfinite(losses)), msg=name)
      final = model.evaluate(data.x, data.y, verbose=0)
      self.assertLess(final, 0.5 * first, msg=name)

  def test_get_accepts_keras_options_and_exports(self):
    optimizer = keras_l2o.pretrained.get("l2l-quadratic", clipnorm=1.0, learning_rate=0.5)
    self.assertEqual(optimizer.clipnorm, 1.0)
    self.assertAllClose(optimizer.learning_rate, 0.5)
    path = optimizer.export(os.path.join(self.get_temp_dir(), "exported"))
    loaded = keras_l2o.load(path)
    tf.nest.map_structure(lambda a, b: self.assertAllEqual(a.numpy(), b.numpy()),
                          loaded.meta_params, optimizer.meta_params)

  def test_gps_optimizers_export_and_the_saved_model_steps_like_the_rule(self):
    # gps-mnist (gps_general) takes no loss; gps-mnist-lstm (gps_lstm) reads it as a fifth argument.
    for name, uses_loss in (("gps-mnist", False), ("gps-mnist-lstm", True)):
      optimizer = keras_l2o.pretrained.get(name)
      self.assertEqual(optimizer.rule.uses_loss, uses_loss, msg=name)
      saved = tf.saved_model.load(optimizer.export(os.path.join(self.get_temp_dir(), name)))
      rule, params = optimizer.rule, tf.nest.map_structure(tf.convert_to_tensor,
                                                           optimizer.meta_params)
      rng = np.random.default_rng(0)
      var = tf.constant(rng.normal(size=7), tf.float32)
      state, saved_state, saved_var = rule.init_state(var), saved.init_state(7), var
      for iteration, loss in enumerate([2.3, 1.9, 1.7]):
        grad = tf.constant(rng.normal(size=7), tf.float32)
        extra = {"loss": tf.constant(loss)} if uses_loss else {}
        update, state = rule.apply(params, grad, var, state, iteration + 1, **extra)
        out = saved.step(grad, saved_var, saved_state, tf.constant(iteration, tf.int64),
                         *extra.values())
        self.assertAllClose(out["var"] - saved_var, update, atol=1e-7, msg=name)
        saved_var, saved_state, var = out["var"], out["state"], var + update
      self.assertGreater(float(tf.reduce_max(tf.abs(update))), 1e-5, msg=name)

  def test_unknown_name_lists_the_shipped_ones(self):
    with self.assertRaises(ValueError) as ctx:
      keras_l2o.pretrained.get("l2l-cifar")
    self.assertEqual(str(ctx.exception), "Unknown pretrained optimizer 'l2l-cifar'. Shipped: "
                     + ", ".join(sorted(SHIPPED)) + ".")


if __name__ == "__main__":
  tf.test.main()
