"""Tabular offline datasets, random input projections, Glorot init and the Adagrad rule.

What the "MNIST MLP 48-48-10 ReLU on inputs randomly projected to 48 dims"
experiments and their transfer tests to other offline datasets need.
"""


import json

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import datasets
from keras_l2o import evaluation
from keras_l2o import problems
from tests.rules import rule_test_base
from tests import testing_utils

# name -> (rows, features, classes) of scikit-learn's bundled tabular sets.
TABULAR = {"breast_cancer": (569, 30, 2), "wine": (178, 13, 3), "iris": (150, 4, 3)}
# The loss of `mnist_mlp` (seed 0, defaults) on test problem 2 at step 5,
# measured with the code before `projection_dim` and "glorot" existed.
MNIST_MLP_LOSS_BEFORE = 2.3034706115722656


def _documented_projection(seed, input_dim, projection_dim):
  """P as MLPFamily's docstring states it, written independently of the library."""
  rng = np.random.default_rng((seed, 7919))
  return rng.standard_normal((input_dim, projection_dim)) / np.sqrt(input_dim)


class TabularDatasetsTest(parameterized.TestCase, tf.test.TestCase):

  @parameterized.named_parameters(*[(name, name) for name in TABULAR])
  def test_shape_classes_and_min_max_scaling(self, name):
    rows, features, classes = TABULAR[name]
    data = getattr(datasets, name)()
    self.assertEqual(data.x.shape, (rows, features))
    self.assertEqual(data.y.shape, (rows,))
    self.assertEqual(data.x.dtype, np.float32)
    self.assertEqual(data.y.dtype, np.int32)
    self.assertEqual(data.num_classes, classes)
    self.assertEqual(len(np.unique(data.y)), classes)
    self.assertAllEqual(data.x.min(axis=0), np.zeros(features))
    self.assertAllEqual(data.x.max(axis=0), np.ones(features))
    loaded = datasets.load(name)
    self.assertAllEqual(loaded.x, data.x)
    self.assertAllEqual(loaded.y, data.y)

  def test_load_errors_name_what_was_received(self):
    with self.assertRaisesRegex(ValueError, r"Dataset 'wine' ships with scikit-learn and takes "
                                r"no path\. Received: path='/x\.npz'"):
      datasets.load("wine", path="/x.npz")
    with self.assertRaisesRegex(ValueError, r"Dataset 'iris' is tabular and has no image shape\. "
                                r"Received: image_shape=True"):
      datasets.load("iris", image_shape=True)
    with self.assertRaises(ValueError) as ctx:
      datasets.load("svhn")
    self.assertEqual(str(ctx.exception), "Unknown dataset 'svhn'. Valid datasets: breast_cancer, "
                     "cifar, digits, iris, mnist, npz, wine.")

  @parameterized.named_parameters(*[(name, name) for name in TABULAR])
  def test_mlp_family_on_tabular_data(self, name):
    rows, features, classes = TABULAR[name]
    family = problems.get("mnist_mlp", dataset=name, hidden_sizes=(48, 48), activation="relu",
                          seed=1)
    self.assertEqual(family.name, f"{name}_mlp")
    sizes = {split: family.data_range(split)[1] for split in problems.SPLITS}
    self.assertEqual(sum(sizes.values()), rows)
    self.assertEqual(sizes["train"], int(round(0.6 * rows)))
    problem = family.sample("test", 0)
    shapes = [tuple(p.shape) for p in family.init_params(problem.tensors)]
    self.assertEqual(shapes, [(features, 48), (48,), (48, 48), (48,), (48, classes), (classes,)])
    # Batches of 128 (the default) are drawn with replacement, also from splits smaller than that.
    self.assertGreater(family.batch_size, sizes["test"])
    offset, size = family.data_range("test")
    indices = family.example_indices(problem.tensors, 3).numpy()
    self.assertLen(indices, 128)
    self.assertTrue(np.all((indices >= offset) & (indices < offset + size)))
    x, y = family.batch(problem.tensors, 3)
    self.assertEqual(tuple(x.shape), (128, features))
    self.assertBetween(float(tf.reduce_min(x)), 0.0, 1.0)
    self.assertLess(int(tf.reduce_max(y)), classes)
    loss = float(family.loss(problem.tensors, family.init_params(problem.tensors), (x, y)))
    self.assertAllClose(loss, np.log(classes), atol=0.05)
    again = problems.get("mnist_mlp", **json.loads(json.dumps(family.get_config())))
    self.assertEqual(again.name, family.name)
    self.assertAllEqual(again.batch(problem.tensors, 3)[0], x)

  def test_data_path_is_refused_for_bundled_sets(self):
    with self.assertRaises(ValueError) as ctx:
      problems.get("mnist_mlp", dataset="iris", data_path="/x.npz")
    self.assertEqual(str(ctx.exception), "Argument `data_path` must be None for dataset 'iris' "
                     "(it ships with scikit-learn). Received: data_path='/x.npz'")


class ProjectionTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.family = problems.get("mnist_mlp", seed=4, hidden_sizes=(48, 48), activation="relu",
                              projection_dim=48)
    data = datasets.mnist()
    parts = datasets.split_dataset(data, 4)
    # The unprojected inputs in the family's [train | validation | test] order.
    cls.raw = np.concatenate([parts[s].x for s in problems.SPLITS]).astype(np.float64)
    cls.matrix = _documented_projection(4, 784, 48)

  def test_first_layer_takes_the_projected_inputs(self):
    self.assertEqual(self.family.input_shape, (48,))
    params = self.family.init_params(self.family.sample("train", 0).tensors)
    self.assertEqual([tuple(p.shape) for p in params],
                     [(48, 48), (48,), (48, 48), (48,), (48, 10), (10,)])
    self.assertEqual(self.family.get_config()["projection_dim"], 48)

  def test_documented_matrix_statistics(self):
    self.assertEqual(self.matrix.shape, (784, 48))
    self.assertAllClose(self.matrix.std(), 1 / 28.0, rtol=0.02)
    self.assertLess(abs(self.matrix.mean()), 1e-3)

  def test_problems_of_every_split_see_x_times_the_same_matrix(self):
    for split, index, step in (("train", 0, 0), ("train", 7, 11), ("validation", 2, 3),
                               ("test", 5, 1)):
      problem = self.family.sample(split, index)
      indices = self.family.example_indices(problem.tensors, step).numpy()
      x, _ = self.family.batch(problem.tensors, step)
      expected = self.raw[indices] @ self.matrix
      self.assertAllClose(x.numpy(), expected, rtol=1e-5, atol=1e-6)
      self.assertGreater(np.abs(expected).max(), 0.5)  # the projection is not vacuous

  def test_same_seed_same_projection_other_seed_another(self):
    config = self.family.get_config()
    again = problems.get("mnist_mlp", **json.loads(json.dumps(config)))
    problem = self.family.sample("test", 1)
    self.assertAllEqual(again.batch(problem.tensors, 2)[0],
                        self.family.batch(problem.tensors, 2)[0])
    other = _documented_projection(5, 784, 48)
    self.assertGreater(np.abs(other - self.matrix).max(), 0.1)

  def test_default_is_unchanged(self):
    default = problems.get("mnist_mlp", seed=0)
    explicit = problems.get("mnist_mlp", seed=0, projection_dim=None)
    self.assertIsNone(default.get_config()["projection_dim"])
    self.assertEqual(default.input_shape, (784,))
    losses = []
    for family in (default, explicit):
      problem = family.sample("test", 2)
      params = family.init_params(problem.tensors)
      losses.append(float(family.loss(problem.tensors, params, family.batch(problem.tensors, 5))))
    self.assertEqual(losses[0], losses[1])
    self.assertAllClose(losses[0], MNIST_MLP_LOSS_BEFORE, rtol=1e-6, atol=0.0)

  def test_bad_projection_dim_is_refused(self):
    for value in (0, -3, 2.5, "48", True):
      with self.assertRaises(ValueError) as ctx:
        problems.get("digits_mlp", projection_dim=value)
      self.assertEqual(str(ctx.exception), "Argument `projection_dim` must be a positive integer "
                       f"or None. Received: projection_dim={value!r}")


class GlorotInitTest(tf.test.TestCase):

  def test_weights_have_the_glorot_std_and_biases_are_zero(self):
    family = problems.get("digits_mlp", hidden_sizes=(2000, 30), init_scale="glorot")
    params = [p.numpy() for p in family.init_params(family.sample("train", 0).tensors)]
    for kernel in params[0::2]:
      fan_in, fan_out = kernel.shape
      self.assertAllClose(kernel.std(), np.sqrt(2.0 / (fan_in + fan_out)), rtol=0.05)
    # The big first layer (64 x 2000) pins it down far more tightly.
    self.assertAllClose(params[0].std(), np.sqrt(2.0 / 2064), rtol=0.01)
    self.assertLess(abs(params[0].mean()), 1e-3)
    for bias in params[1::2]:
      self.assertAllEqual(bias, np.zeros_like(bias))
    self.assertEqual(family.get_config()["init_scale"], "glorot")
    again = problems.get("digits_mlp", **json.loads(json.dumps(family.get_config())))
    self.assertAllEqual(again.init_params(again.sample("train", 0).tensors)[0], params[0])

  def test_bad_init_scale_is_refused(self):
    for value in ("xavier", -1.0, None):
      with self.assertRaises(ValueError) as ctx:
        problems.get("digits_mlp", init_scale=value)
      self.assertEqual(str(ctx.exception), "Argument `init_scale` must be a non-negative number "
                       f"or 'glorot'. Received: init_scale={value!r}")


class AdagradTest(rule_test_base.RuleTestBase):
  RULE_NAME = "adagrad"
  # a = 0.1 + g^2 = [0.35, 0.1625]; x - 0.1 g / sqrt(a + 1e-7).
  HAND_STEP = ([1.0, -2.0], [0.5, 0.25], 0.1,
               [1.0 - 0.05 / np.sqrt(0.35 + 1e-7), -2.0 - 0.025 / np.sqrt(0.1625 + 1e-7)])


class AdagradConfigTest(rule_test_base.RuleTestBase):
  RULE_NAME = "adagrad"
  CONFIG = {"initial_accumulator_value": 0.0, "epsilon": 1e-3}


class AdagradRuleTest(tf.test.TestCase):

  def test_registration_config_and_errors(self):
    rule = keras_l2o.rules.get("adagrad")
    self.assertIsInstance(rule, keras_l2o.rules.Adagrad)
    self.assertIn("adagrad", keras_l2o.rules.names())
    self.assertIn("adagrad", keras_l2o.rules.HAND_DESIGNED)
    self.assertEqual(rule.get_config(), {"initial_accumulator_value": 0.1, "epsilon": 1e-7})
    self.assertEqual(rule.state_floats_per_parameter(), 1)
    self.assertFalse(rule.is_learned)
    self.assertAllClose(rule.init_state(tf.zeros([2, 3])).accumulator, np.full([2, 3], 0.1))
    with self.assertRaisesRegex(ValueError, r"Argument `initial_accumulator_value` must be a "
                                r"finite number >= 0\. Received: "
                                r"initial_accumulator_value=-0\.5"):
      keras_l2o.rules.get("adagrad", initial_accumulator_value=-0.5)
    with self.assertRaisesRegex(ValueError, r"Received: epsilon=0"):
      keras_l2o.rules.get("adagrad", epsilon=0)

  def test_matches_keras_adagrad_for_50_fit_steps(self):
    steps, batch_size = 50, 16
    initial = testing_utils.weights_of(testing_utils.digits_mlp(seed=0))
    results = []
    for optimizer in (keras_l2o.LearnedOptimizer("adagrad", learning_rate=0.1),
                      keras.optimizers.Adagrad(0.1)):
      model = testing_utils.digits_mlp(seed=0)
      testing_utils.compile_and_fit(model, optimizer, epochs=1, num_samples=steps * batch_size,
                                    batch_size=batch_size, build_first=True)
      self.assertEqual(int(model.optimizer.iterations), steps)
      results.append(testing_utils.weights_of(model))
    diff = testing_utils.max_abs_diff(*results)
    self.assertLess(diff, 1e-6, f"max |learned - keras| = {diff}")
    self.assertGreater(testing_utils.max_abs_diff(results[1], initial), 1e-2)

  def test_matches_keras_adagrad_on_a_variable(self):
    rng = np.random.default_rng(3)
    init = rng.normal(size=(4, 5)).astype(np.float32)
    ours, theirs = tf.Variable(init), tf.Variable(init)
    learned = keras_l2o.LearnedOptimizer("adagrad", learning_rate=0.1)
    reference = keras.optimizers.Adagrad(0.1)
    for _ in range(50):
      for variable, optimizer in ((ours, learned), (theirs, reference)):
        optimizer.apply([tf.sin(3.0 * variable) + 0.3 * variable], [variable])
    self.assertLess(np.abs(ours.numpy() - theirs.numpy()).max(), 1e-6)
    self.assertGreater(np.abs(theirs.numpy() - init).max(), 0.1)


class AdagradBaselineTest(tf.test.TestCase):

  def test_adagrad_is_a_tunable_baseline(self):
    self.assertIn("adagrad", evaluation.BASELINES)
    spec = evaluation.baseline("adagrad")
    self.assertEqual(spec.rule.name, "adagrad")
    self.assertTrue(spec.tuned)
    family = problems.get("quadratic", seed=0)
    runner = evaluation.Runner(family, horizon=20)
    validation = [family.sample("validation", i) for i in range(2)]
    best, scores = evaluation.tune_learning_rate(runner, spec, validation, grid=(0.01, 0.1, 1.0))
    self.assertIn(best, (0.01, 0.1, 1.0))
    self.assertEqual(scores[best], min(scores.values()))
    curves = runner.curves(spec, [family.sample("test", 0)], best)
    self.assertLess(curves[0, -1], curves[0, 0])


class WineMLPTrainingTest(tf.test.TestCase):

  def test_tuned_adam_lowers_the_wine_mlp_loss(self):
    family = problems.get("mnist_mlp", dataset="wine", hidden_sizes=(48, 48), activation="relu",
                          projection_dim=None, seed=0)
    self.assertEqual(family.name, "wine_mlp")
    results = evaluation.evaluate(family, [evaluation.baseline("adam")], num_problems=4,
                                  horizon=50, tuning_problems=2, speedup_horizon_factor=1)
    adam = results["optimizers"]["adam"]
    self.assertIn(adam["learning_rate"], evaluation.DEFAULT_GRID)
    curve = adam["curve_mean"]
    self.assertLen(curve, 51)
    self.assertAllClose(curve[0], np.log(3.0), atol=0.05)
    self.assertLess(curve[-1], curve[0])
    self.assertLess(adam["final_loss_mean"], 0.5 * curve[0])
    self.assertEqual(adam["num_diverged"], 0)


if __name__ == "__main__":
  tf.test.main()
