"""Tests of the `general_tasks` meta-training family and its reparameterisation augmentation."""


import doctest

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from keras_l2o.problems import general_tasks
from keras_l2o.problems import meta_data

# What the held-out suite trains on (issue 21): none of it may appear here.
SUITE_DATASETS = {"digits", "breast_cancer", "wine", "diabetes", "iris", "mnist", "cifar"}


def _loss_and_grads(component, tensors, step=0):
  params = component.init_params(tensors)
  batch = component.batch(tensors, step)
  with tf.GradientTape() as tape:
    tape.watch(params)
    loss = component.loss(tensors, params, batch)
  return float(loss), params, tape.gradient(loss, params)


class GeneralTasksTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.plain = problems.get("general_tasks", seed=3)
    cls.augmented = problems.get("general_tasks", seed=3, reparam=True)

  def test_augmentation_leaves_the_initial_loss_unchanged_and_scales_gradients(self):
    scales = []
    for index in range(len(self.plain.components)):
      k = self.plain.component_of(index)
      plain, aug = self.plain.components[k], self.augmented.components[k]
      p_plain, p_aug = self.plain.sample("train", index), self.augmented.sample("train", index)
      s = float(p_aug.tensors["reparam_scale"])
      scales.append(s)
      loss_plain, w_plain, g_plain = _loss_and_grads(plain, p_plain.tensors)
      loss_aug, w_aug, g_aug = _loss_and_grads(aug, p_aug.tensors)
      self.assertAllClose(loss_plain, loss_aug, rtol=1e-5, msg=plain.name)
      for a, b, ga, gb in zip(w_plain, w_aug, g_plain, g_aug):
        self.assertAllClose(a, b * s, rtol=1e-5, atol=1e-7)  # stored as w / s
        self.assertAllClose(ga * s, gb, rtol=1e-3, atol=1e-6 * s)  # gradient scaled by s
    self.assertEqual(float(self.plain.sample("train", 0).tensors["reparam_scale"]), 1.0)
    self.assertGreater(max(scales) / min(scales), 100.0)  # log-uniform over 6 decades
    self.assertTrue(all(1e-3 <= s <= 1e3 for s in scales))

  def test_problems_are_deterministic_per_seed(self):
    again = problems.get("general_tasks", **self.augmented.get_config())
    self.assertEqual(again.get_config()["seed"], 3)
    for index in (0, 3, 9):
      first, second = self.augmented.sample("validation", index), again.sample("validation", index)
      self.assertEqual(sorted(first.tensors), sorted(second.tensors))
      for key in first.tensors:
        self.assertAllEqual(first.tensors[key], second.tensors[key])
      k = again.component_of(index)
      batch_a = self.augmented.components[k].batch(first.tensors, 17)
      batch_b = again.components[k].batch(second.tensors, 17)
      self.assertAllEqual(batch_a[0], batch_b[0])
    other = problems.get("general_tasks", seed=4).sample("validation", 0)
    self.assertNotAllClose(other.tensors["param_0"], self.plain.sample("validation", 0)
                           .tensors["param_0"])

  def test_tasks_are_distinct_and_named_by_dataset_and_architecture(self):
    components = self.plain.components
    self.assertLen(components, len(general_tasks.TASKS))
    self.assertLen({c.name for c in components}, len(components))
    self.assertLen({c.spec for c in components}, len(components))
    self.assertEqual({c.architecture for c in components}, {"mlp", "conv"})
    self.assertGreaterEqual(len({c.spec.activation for c in components}), 4)
    self.assertGreaterEqual(len({c.batch_size for c in components}), 4)
    self.assertEqual(self.plain.datasets(), set(meta_data.NAMES))
    self.assertFalse(self.plain.datasets() & SUITE_DATASETS)
    # Different tasks see different data or networks: their first losses all differ.
    losses = [_loss_and_grads(c, self.plain.sample("train", k).tensors)[0]
              for k, c in enumerate(components)]
    self.assertLen({round(l, 6) for l in losses}, len(components))
    # Splits of a task never share an example.
    for c in components:
      (o1, n1), (o2, _) = c.data_range("train"), c.data_range("validation")
      self.assertLessEqual(o1 + n1, o2)

  def test_meta_datasets(self):
    x8 = meta_data.load("mnist8", image_shape=True).x
    x14 = meta_data.load("mnist14").x
    self.assertEqual(x8.shape, (5000, 8, 8, 1))
    self.assertEqual(x14.shape, (5000, 196))
    full = keras_l2o.datasets.mnist().x.reshape(-1, 28, 28)
    self.assertAllClose(x14[0].reshape(14, 14)[3, 5], full[0, 6:8, 10:12].mean(), rtol=1e-6)
    self.assertAllClose(x8[0, 2, 3, 0], np.pad(full[0], 2)[8:12, 12:16].mean(), rtol=1e-6)
    with self.assertRaisesRegex(ValueError, "Unknown meta-training dataset 'digits'"):
      meta_data.load("digits")

  def test_general_rule_unrolls_and_trains_on_a_task(self):
    rule = keras_l2o.rules.get("general")
    family = problems.get("general_tasks", seed=0, tasks=["mnist14_conv_8x16_relu_b64"])
    component = family.components[0]
    tensors = family.sample("train", 0).tensors
    state = unroll_lib.init_state(rule, component, tensors)
    losses, final, state = unroll_lib.unroll(rule, rule.init_meta_params(0), component, tensors,
                                             state, 60, learning_rate=5.0)
    self.assertEqual(int(state.step), 60)
    self.assertLess(float(final), 0.7 * float(np.mean(losses.numpy()[:5])))

  def test_bad_config_is_refused(self):
    with self.assertRaisesRegex(ValueError, "`tasks` must be a non-empty list.*Received: "
                                "tasks=\\['nope'\\]"):
      problems.get("general_tasks", tasks=["nope"])
    with self.assertRaisesRegex(ValueError, "reparam_range.*Received: reparam_range=\\(10.0, 1.0"):
      problems.get("general_tasks", reparam=True, reparam_range=(10.0, 1.0))
    with self.assertRaisesRegex(ValueError, "unexpected config"):
      problems.get("general_tasks", horizon=5)

  def test_small_training_sets_keep_a_log_uniform_prefix_and_change_nothing_else(self):
    small = problems.get("general_tasks", seed=3, reparam=True, train_size_range=(0.02, 0.2))
    self.assertEqual(small.get_config()["train_size_range"], [0.02, 0.2])
    self.assertNotIn("train_size_range", self.augmented.get_config())  # off: the old config
    again = problems.get("general_tasks", **small.get_config())
    fractions = []
    for index in range(24):
      k = small.component_of(index)
      component = small.components[k]
      full = self.augmented.sample("train", index).tensors
      kept = small.sample("train", index).tensors
      self.assertAllEqual(again.sample("train", index).tensors["data_size"], kept["data_size"])
      offset, size = component.data_range("train")
      n = int(kept["data_size"])
      self.assertEqual(int(kept["data_offset"]), offset)
      self.assertEqual(int(full["data_size"]), size)
      self.assertBetween(n, max(component.batch_size, int(0.02 * size)), round(0.2 * size))
      fractions.append(n / size)
      for key in full:  # the same weights, scale and batch seed as without the option
        if key != "data_size":
          self.assertAllEqual(full[key], kept[key])
      indices = component.example_indices(kept, 7).numpy()
      self.assertTrue(np.all((indices >= offset) & (indices < offset + n)))
      heldout = component.heldout_indices(kept, 7).numpy()  # from the validation part
      v_offset, v_size = component.data_range("validation")
      self.assertTrue(np.all((heldout >= v_offset) & (heldout < v_offset + v_size)))
    self.assertLess(min(fractions), 0.05)  # log-uniform over a decade
    self.assertGreater(max(fractions), 0.1)
    for bad in ((0.0, 0.5), (0.5, 0.2), (0.1, 1.5), "small", (0.1,)):
      with self.assertRaisesRegex(ValueError, "`train_size_range` must be None or \\(lo, hi\\) "
                                  "with 0 < lo <= hi <= 1. Received: train_size_range="):
        problems.get("general_tasks", train_size_range=bad)

  def test_docstring_examples_run(self):
    from keras_l2o.rules import general, newton_schulz  # pylint: disable=g-import-not-at-top
    for module in (general_tasks, general, newton_schulz, problems):
      failed, attempted = doctest.testmod(module)
      self.assertGreater(attempted, 0, module.__name__)
      self.assertEqual(failed, 0, module.__name__)


if __name__ == "__main__":
  tf.test.main()
