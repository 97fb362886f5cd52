"""The warm-up + cosine schedule for a known run length, and the pretrained optimizers on it."""

import math

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import schedules


def _expected(peak, steps, step):
  """The schedule written out: 5% linear warm-up (at least 1 step), cosine to 0 at the end."""
  warmup = max(1, int(0.05 * steps))
  if step < warmup:
    return peak * step / warmup
  progress = min(step - warmup, steps - warmup) / (steps - warmup)
  return peak * 0.5 * (1 + math.cos(math.pi * progress))


class WarmupCosineTest(tf.test.TestCase):

  def test_values_follow_the_formula(self):
    for peak, steps in ((1.0, 1000), (3e-3, 1200), (0.5, 2), (2.0, 7)):
      schedule = schedules.warmup_cosine(peak, steps)
      for step in sorted({0, 1, steps // 20, steps // 2, steps - 1, steps, steps + 5}):
        self.assertAllClose(float(schedule(step)), _expected(peak, steps, step), atol=1e-6,
                            msg=f"peak {peak}, steps {steps}, step {step}")
    schedule = schedules.warmup_cosine(1.0, 1000)
    self.assertEqual([round(float(schedule(s)), 4) for s in (0, 25, 50, 525, 1000)],
                     [0.0, 0.5, 1.0, 0.5, 0.0])

  def test_bad_arguments_say_what_is_allowed(self):
    with self.assertRaisesRegex(ValueError, r"Argument `num_training_steps` must be an integer "
                                r">= 2\. Received: num_training_steps=1"):
      schedules.warmup_cosine(1.0, 1)
    with self.assertRaisesRegex(ValueError, "Argument `num_training_steps` must be an integer"):
      schedules.warmup_cosine(1.0, 100.0)
    with self.assertRaisesRegex(ValueError, "Argument `peak` must be"):
      schedules.warmup_cosine(0.0, 100)


class PretrainedOnScheduleTest(tf.test.TestCase):

  def test_the_card_rate_is_the_peak(self):
    optimizer = keras_l2o.pretrained.get(num_training_steps=200)
    rates = []
    for step in (0, 5, 10, 105, 200):
      optimizer.iterations.assign(step)
      rates.append(float(optimizer.learning_rate))
    card_rate = keras_l2o.pretrained.card()["learning_rate"]
    self.assertAllClose(rates, [_expected(card_rate, 200, s) for s in (0, 5, 10, 105, 200)],
                        atol=1e-6)
    self.assertAllClose(rates[2], card_rate)
    lower = keras_l2o.pretrained.get("l2o-mlp-factored", num_training_steps=200,
                                     learning_rate=0.25)
    lower.iterations.assign(10)
    self.assertAllClose(float(lower.learning_rate), 0.25)

  def test_without_steps_the_rate_is_the_cards(self):
    optimizer = keras_l2o.pretrained.get()
    optimizer.iterations.assign(150)
    self.assertAllClose(float(optimizer.learning_rate),
                        keras_l2o.pretrained.card()["learning_rate"])

  def test_trains_a_model_and_ends_at_rate_zero(self):
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], "float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras_l2o.pretrained.get(num_training_steps=400), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=100, verbose=0)  # 4 steps x 100 = 400
    self.assertEqual(int(model.optimizer.iterations), 400)
    self.assertAllClose(float(model.optimizer.learning_rate), 0.0, atol=1e-7)
    self.assertLess(history.history["loss"][-1], 0.5 * history.history["loss"][0])

  def test_weight_decay_follows_the_schedule(self):
    # Keras's decoupled decay: w <- w - lr_t * wd * w, besides the rule's step (which does
    # not read w): against the same optimizer without decay, w moves by lr_t * wd * w more.
    moved, weights = {}, {}
    for weight_decay in (0.003, None):
      optimizer = keras_l2o.pretrained.get(num_training_steps=200, weight_decay=weight_decay)
      w = keras.Variable(np.full((3,), 2.0, np.float32))
      optimizer.build([w])
      for step in (10, 105):  # the end of the warm-up (rate 1.0), then half-way (rate 0.5)
        optimizer.iterations.assign(step)
        weights[weight_decay, step] = w.numpy()
        optimizer.apply([np.full(3, 0.1, np.float32)], [w])
        moved[weight_decay, step] = w.numpy() - weights[weight_decay, step]
    for step in (10, 105):
      self.assertAllClose(moved[0.003, step] - moved[None, step],
                          -_expected(1.0, 200, step) * 0.003 * weights[0.003, step], atol=1e-6)
      self.assertGreater(np.abs(moved[None, step]).min(), 1e-4)  # the rule's own step

  def test_a_schedule_and_steps_together_are_refused(self):
    with self.assertRaisesRegex(ValueError, "Pass either `num_training_steps` .* or a schedule "
                                "as `learning_rate`, not both"):
      keras_l2o.pretrained.get(num_training_steps=100,
                               learning_rate=keras.optimizers.schedules.ExponentialDecay(
                                   1.0, 10, 0.5))
    with self.assertRaisesRegex(ValueError, "Argument `num_training_steps` must be an integer"):
      keras_l2o.pretrained.get(num_training_steps=0)


if __name__ == "__main__":
  tf.test.main()
