"""Problem families: determinism, disjoint splits, losses, gradients, registry, errors."""

import os

import doctest
import functools
import json
import math
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from keras_l2o import datasets
from keras_l2o import problems

ALL = ("quadratic", "digits_mlp", "mnist_mlp", "conv", "keras_model")
DATA = ("digits_mlp", "mnist_mlp", "conv", "keras_model")
CLASSIFIERS = ("digits_mlp", "mnist_mlp", "conv")
# Plain gradient descent learning rates that decrease each family's loss.
LEARNING_RATES = {"quadratic": 0.005, "digits_mlp": 2.0, "mnist_mlp": 2.0, "conv": 0.05,
                  "keras_model": 0.1}


def _named(names):
  return [(name, name) for name in names]


def _sparse_xent():
  return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _digits_dataset(batch_size=64):
  data = datasets.digits()
  return tf.data.Dataset.from_tensor_slices((data.x, data.y)).batch(batch_size)


def _tiny_model(batch_norm=False):
  layers = [keras.Input((64,)), keras.layers.Dense(8)]
  if batch_norm:
    layers.append(keras.layers.BatchNormalization())
  layers += [keras.layers.Activation("relu"), keras.layers.Dense(10)]
  return keras.Sequential(layers)


@functools.lru_cache(maxsize=None)
def _family(name):
  """One family per name and process (families hold their dataset in variables)."""
  if name == "keras_model":
    return problems.KerasModelFamily(_tiny_model(), _digits_dataset(), _sparse_xent(), seed=3)
  config = {"quadratic": {}, "digits_mlp": {"batch_size": 32}, "mnist_mlp": {},
            "conv": {"channels": (4, 4), "batch_size": 32}}[name]
  return problems.get(name, seed=3, **config)


def _numpy(values):
  return [np.asarray(v) for v in values]


def _used_indices(family, tensors, steps):
  """The example (or, for keras_model, batch) indices that a problem's batches use."""
  if isinstance(family, problems.KerasModelFamily):
    return {int(family.batch_index(tensors, s)) for s in range(steps)}
  return set(np.concatenate([family.example_indices(tensors, s).numpy() for s in range(steps)]))


def _loss(family, tensors, params, step=0):
  return float(family.loss(tensors, params, family.batch(tensors, step)))


class DeterminismAndSplitsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_named(ALL))
  def test_same_draw_gives_identical_tensors_and_batches(self, name):
    family = _family(name)
    first, second = family.sample("validation", 2), family.sample("validation", 2)
    self.assertEqual(sorted(first.tensors), sorted(second.tensors))
    for key in first.tensors:
      self.assertAllEqual(first.tensors[key], second.tensors[key])
    for step in (0, 7):
      for a, b in zip(tf.nest.flatten(family.batch(first.tensors, step)),
                      tf.nest.flatten(family.batch(second.tensors, step))):
        self.assertAllEqual(a, b)

  @parameterized.named_parameters(*_named(DATA))
  def test_different_draws_differ(self, name):
    family = _family(name)
    draws = [family.sample("train", 0), family.sample("train", 1), family.sample("validation", 0),
             family.sample("test", 0)]
    seeds = [int(d.tensors["batch_seed"]) for d in draws]
    self.assertLen(set(seeds), len(draws))
    for i, a in enumerate(draws):
      for b in draws[i + 1:]:
        self.assertNotAllClose(_numpy(family.init_params(a.tensors))[0],
                               _numpy(family.init_params(b.tensors))[0])
    # Consecutive steps of one problem see different batches.
    self.assertNotAllClose(family.batch(draws[0].tensors, 0)[0],
                           family.batch(draws[0].tensors, 1)[0])

  def test_quadratic_draws_differ(self):
    family = _family("quadratic")
    self.assertNotAllClose(family.sample("train", 0).tensors["w"],
                           family.sample("test", 0).tensors["w"])

  @parameterized.named_parameters(*_named(DATA))
  def test_splits_use_disjoint_data(self, name):
    family = _family(name)
    used = {}
    for split in problems.SPLITS:
      offset, size = family.data_range(split)
      used[split] = set()
      for index in range(3):
        indices = _used_indices(family, family.sample(split, index).tensors, steps=40)
        self.assertBetween(min(indices), offset, offset + size - 1)
        self.assertBetween(max(indices), offset, offset + size - 1)
        used[split] |= indices
    self.assertEmpty(used["train"] & used["test"])
    self.assertEmpty(used["train"] & used["validation"])
    self.assertEmpty(used["validation"] & used["test"])
    ranges = sorted(family.data_range(s) for s in problems.SPLITS)
    for (offset_a, size_a), (offset_b, _) in zip(ranges, ranges[1:]):
      self.assertLessEqual(offset_a + size_a, offset_b)

  def test_mlp_split_sizes_follow_the_dataset(self):
    family = _family("digits_mlp")
    sizes = [family.data_range(s)[1] for s in problems.SPLITS]
    self.assertEqual(sizes, [1078, 359, 360])  # 1,797 digits split 0.6 / 0.2 / 0.2.


class LossesTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(*_named(ALL))
  def test_initial_losses_are_finite_and_have_shape_one(self, name):
    family = _family(name)
    problem = family.sample("test", 0)
    params = family.init_params(problem.tensors)
    losses = family.losses(problem.tensors, params, family.batch(problem.tensors, 0))
    self.assertEqual(losses.shape, [1])
    self.assertTrue(np.isfinite(losses.numpy()).all())

  @parameterized.named_parameters(*_named(("digits_mlp", "mnist_mlp")))
  def test_mlp_initial_loss_is_log_10(self, name):
    family = _family(name)
    for index in range(2):
      problem = family.sample("train", index)
      params = family.init_params(problem.tensors)
      for step in (0, 3):
        self.assertLess(abs(_loss(family, problem.tensors, params, step) - math.log(10)), 0.05)

  @parameterized.named_parameters(*_named(ALL))
  def test_gradient_descent_reduces_the_loss_on_a_fixed_batch(self, name):
    family = _family(name)
    problem = family.sample("train", 0)
    params = [tf.Variable(p) for p in family.init_params(problem.tensors)]
    batch = family.batch(problem.tensors, 0)
    initial = float(family.loss(problem.tensors, params, batch))
    for _ in range(10):
      with tf.GradientTape() as tape:
        total = tf.reduce_sum(family.losses(problem.tensors, params, batch))
      for p, g in zip(params, tape.gradient(total, params)):
        p.assign_sub(LEARNING_RATES[name] * g)
    self.assertLess(float(family.loss(problem.tensors, params, batch)), initial - 0.05)

  @parameterized.named_parameters(*_named(ALL))
  def test_float64_params(self, name):
    family = _family(name)
    problem = family.sample("validation", 1)
    params = family.init_params(problem.tensors)
    params64 = [tf.cast(p, tf.float64) for p in params]
    batch = family.batch(problem.tensors, 2)
    with tf.GradientTape() as tape:
      tape.watch(params64)
      losses = family.losses(problem.tensors, params64, batch)
      total = tf.reduce_sum(losses)
    self.assertEqual(losses.dtype, tf.float64)
    self.assertAllClose(losses, family.losses(problem.tensors, params, batch), rtol=1e-4)
    for grad, p in zip(tape.gradient(total, params64), params64):
      self.assertEqual(grad.dtype, tf.float64)
      self.assertEqual(grad.shape, p.shape)

  @parameterized.named_parameters(*_named(ALL))
  def test_one_trace_serves_every_problem(self, name):
    family = _family(name)

    @tf.function
    def unroll(tensors, num_steps):
      def body(step, params, total):
        batch = family.batch(tensors, step)
        with tf.GradientTape() as tape:
          tape.watch(params)
          loss = tf.reduce_sum(family.losses(tensors, params, batch))
        grads = tape.gradient(loss, params)
        params = [p - LEARNING_RATES[name] * g for p, g in zip(params, grads)]
        return step + 1, params, total + loss
      _, _, total = tf.while_loop(lambda step, *_: step < num_steps, body,
                                  (tf.constant(0, tf.int64), family.init_params(tensors),
                                   tf.constant(0.0)))
      return total

    steps = tf.constant(3, tf.int64)
    totals = [unroll(family.sample(split, i).tensors, steps)
              for split, i in (("train", 0), ("train", 1), ("test", 4))]
    self.assertEqual(unroll.experimental_get_tracing_count(), 1)
    self.assertLen({round(float(t), 6) for t in totals}, 3)
    problem = family.sample("train", 1)
    first = _loss(family, problem.tensors, family.init_params(problem.tensors))
    self.assertGreater(float(totals[1]), first)  # Three positive losses, the first one this.

  @parameterized.parameters(("digits_mlp", {"hidden_sizes": (3,), "activation": "tanh",
                                            "init_scale": 0.5, "batch_size": 4}),
                            ("conv", {"channels": (2,), "batch_size": 2}))
  def test_gradient_matches_finite_differences_in_float64(self, name, config):
    family = problems.get(name, seed=1, **config)
    problem = family.sample("train", 0)
    params = [tf.cast(p, tf.float64) for p in family.init_params(problem.tensors)]
    batch = family.batch(problem.tensors, 0)
    rng = np.random.default_rng(0)
    # A generic point: at zero biases, the ReLUs of blank pixels sit exactly on their kink.
    params = [p + tf.constant(0.1 * rng.standard_normal(p.shape)) for p in params]

    def loss_at(values):
      return float(tf.reduce_sum(family.losses(problem.tensors, values, batch)))

    with tf.GradientTape() as tape:
      tape.watch(params)
      loss = tf.reduce_sum(family.losses(problem.tensors, params, batch))
    grads = [g.numpy() for g in tape.gradient(loss, params)]
    eps = 1e-6
    for tensor_index, p in enumerate(params):
      flat = p.numpy().ravel()
      for coord in rng.choice(flat.size, size=min(6, flat.size), replace=False):
        shifted = []
        for sign in (1, -1):
          values = flat.copy()
          values[coord] += sign * eps
          trial = list(params)
          trial[tensor_index] = tf.constant(values.reshape(p.shape))
          shifted.append(loss_at(trial))
        numeric = (shifted[0] - shifted[1]) / (2 * eps)
        self.assertAllClose(grads[tensor_index].ravel()[coord], numeric, atol=1e-8, rtol=1e-5)


class FamiliesTest(tf.test.TestCase, parameterized.TestCase):

  def test_names(self):
    self.assertEqual(problems.names(), ["conv", "digits_mlp", "general_tasks",
                                        "logistic_regression", "mnist_mlp", "neural_art",
                                        "quadratic", "robust_linear_regression", "two_layer_net"])

  def test_paper_generalisation_config(self):
    family = problems.get("mnist_mlp", seed=0, hidden_sizes=(40,), activation="relu",
                          horizon=200)
    self.assertEqual(family.name, "mnist_mlp")
    self.assertEqual(family.default_horizon, 200)
    shapes = [p.shape for p in family.init_params(family.sample("train", 0).tensors)]
    self.assertEqual(shapes, [(784, 40), (40,), (40, 10), (10,)])
    digits = problems.get("digits_mlp")
    self.assertEqual(digits.name, "digits_mlp")
    self.assertEqual(digits.get_config()["hidden_sizes"], (20,))
    self.assertEqual(digits.num_parameters(), 64 * 20 + 20 + 20 * 10 + 10)

  def test_mlp_init_scale_draws_weights_and_biases(self):
    family = problems.get("digits_mlp", hidden_sizes=(50,), init_scale=0.1)
    params = _numpy(family.init_params(family.sample("train", 0).tensors))
    for p in params:
      self.assertAllClose(p.std(), 0.1, rtol=0.3)

  @parameterized.parameters(
      ("quadratic", {"variant": "dm_code"}),
      ("digits_mlp", {"hidden_sizes": (5, 4), "activation": "tanh"}),
      ("mnist_mlp", {"batch_size": 16}),
      ("conv", {"channels": (3,), "kernel_size": 2}),
  )
  def test_config_round_trip(self, name, config):
    family = problems.get(name, seed=5, **config)
    config = json.loads(json.dumps(family.get_config()))  # JSON-serialisable, too.
    again = problems.get(name, **config)
    self.assertEqual(again.get_config(), family.get_config())
    self.assertEqual(again.name, family.name)
    a, b = family.sample("test", 1), again.sample("test", 1)
    for key in a.tensors:
      self.assertAllEqual(a.tensors[key], b.tensors[key])
    for x, y in zip(tf.nest.flatten(family.batch(a.tensors, 4)),
                    tf.nest.flatten(again.batch(b.tensors, 4))):
      self.assertAllEqual(x, y)

  def test_conv_shapes_and_pooling(self):
    family = _family("conv")  # 8x8 digits: pooled to 4x4 then 2x2.
    shapes = [p.shape for p in family.init_params(family.sample("train", 0).tensors)]
    self.assertEqual(shapes, [(3, 3, 1, 4), (4,), (3, 3, 4, 4), (4,), (2 * 2 * 4, 10), (10,)])
    deep = problems.get("conv", channels=(2, 2, 2, 2))  # 8 -> 4 -> 2 -> 2 -> 2.
    self.assertEqual(deep.init_params(deep.sample("train", 0).tensors)[-2].shape, (8, 10))
    params = _numpy(family.init_params(family.sample("train", 0).tensors))
    self.assertAllEqual(params[1], np.zeros(4))
    self.assertAllClose(params[2].std(), math.sqrt(2 / 36), rtol=0.3)  # He normal.

  def test_conv_on_a_cifar_npz(self):
    rng = np.random.default_rng(0)
    path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "cifar.npz")
    np.savez(path, x_train=rng.integers(0, 256, (50, 32, 32, 3), dtype=np.uint8),
             y_train=np.arange(50) % 10)
    family = problems.get("conv", dataset="cifar", data_path=path, channels=(2,), batch_size=4)
    problem = family.sample("train", 0)
    params = family.init_params(problem.tensors)
    self.assertEqual([p.shape for p in params], [(3, 3, 3, 2), (2,), (16 * 16 * 2, 10), (10,)])
    x, y = family.batch(problem.tensors, 0)
    self.assertEqual(x.shape, (4, 32, 32, 3))
    self.assertEqual(y.shape, (4,))
    self.assertTrue(np.isfinite(float(family.loss(problem.tensors, params, (x, y)))))

  def test_mnist_mlp_on_a_user_npz(self):
    rng = np.random.default_rng(0)
    path = os.path.join(tempfile.mkdtemp(dir=self.get_temp_dir()), "mnist.npz")
    np.savez(path, x_train=rng.integers(0, 256, (60, 28, 28), dtype=np.uint8),
             y_train=np.arange(60) % 10, x_test=rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
             y_test=np.arange(20) % 10)
    family = problems.get("mnist_mlp", data_path=path, batch_size=8)
    self.assertEqual(sum(family.data_range(s)[1] for s in problems.SPLITS), 80)
    problem = family.sample("train", 0)
    self.assertEqual(family.batch(problem.tensors, 0)[0].shape, (8, 784))


class KerasModelTest(tf.test.TestCase):

  def test_loss_matches_keras(self):
    model = _tiny_model(batch_norm=True)
    family = problems.KerasModelFamily(model, _digits_dataset(), _sparse_xent(), seed=1)
    problem = family.sample("test", 2)
    params = family.init_params(problem.tensors)
    x, y = family.batch(problem.tensors, 5)
    reference = keras.models.clone_model(model)
    for variable, value in zip(reference.trainable_variables, params):
      variable.assign(value)
    expected = _sparse_xent()(y, reference(x, training=True))
    self.assertAllClose(family.loss(problem.tensors, params, (x, y)), expected, rtol=1e-6)
    self.assertLen(params, 4 + 2)  # two dense layers and the batch norm's gamma and beta.

  def test_reinitialisation_per_problem(self):
    family = _family("keras_model")
    same = [_numpy(family.init_params(family.sample("train", 3).tensors)) for _ in range(2)]
    for a, b in zip(*same):
      self.assertAllEqual(a, b)
    other = _numpy(family.init_params(family.sample("train", 4).tensors))
    self.assertNotAllClose(same[0][0], other[0])

  def test_without_reinitialisation_every_problem_starts_at_the_model(self):
    model = _tiny_model()
    family = problems.KerasModelFamily(model, _digits_dataset(), "mse", reinitialize=False,
                                       num_batches=5, split_fractions=(0.6, 0.2, 0.2))
    self.assertEqual([family.data_range(s)[1] for s in problems.SPLITS], [3, 1, 1])
    for split, index in (("train", 0), ("test", 7)):
      params = family.init_params(family.sample(split, index).tensors)
      for p, w in zip(params, model.trainable_variables):
        self.assertAllEqual(p, w)

  def test_unbuilt_model_is_built_and_ragged_batch_dropped(self):
    model = keras.Sequential([keras.layers.Dense(10)])
    family = problems.KerasModelFamily(model, _digits_dataset(batch_size=500), _sparse_xent())
    self.assertTrue(model.built)
    params = family.init_params(family.sample("train", 0).tensors)  # Clones need building, too.
    self.assertEqual([p.shape for p in params], [(64, 10), (10,)])
    self.assertEqual(sum(family.data_range(s)[1] for s in problems.SPLITS), 3)  # 297 dropped.
    self.assertEqual(family.get_config(), {"seed": 0, "num_batches": None, "horizon": 100,
                                           "reinitialize": True,
                                           "split_fractions": (0.6, 0.2, 0.2)})

  def test_errors(self):
    data, loss = _digits_dataset(), _sparse_xent()
    with self.assertRaisesRegex(ValueError, r"^Argument `model` must be a keras.Model\. "
                                r"Received: model='dense'$"):
      problems.KerasModelFamily("dense", data, loss)
    x = datasets.digits().x
    with self.assertRaisesRegex(ValueError, r"^Argument `dataset` must yield \(x, y\) pairs of "
                                r"tensors\. Received: element_spec=TensorSpec"):
      problems.KerasModelFamily(_tiny_model(), tf.data.Dataset.from_tensor_slices(x).batch(8),
                                loss)
    with self.assertRaises(ValueError) as ctx:
      problems.KerasModelFamily(_tiny_model(), data, "no_such_loss")
    self.assertEqual(str(ctx.exception),
                     "Argument `loss` must be a keras.losses.Loss, a loss function or the name "
                     "of a Keras loss. Received: loss='no_such_loss'")
    with self.assertRaisesRegex(ValueError, r"Every split needs at least one batch, but the 2 "
                                r"batches of `dataset` split by split_fractions=\(0\.6, 0\.2, "
                                r"0\.2\) give \{'train': 0, 'validation': 1, 'test': 1\}"):
      problems.KerasModelFamily(_tiny_model(), data, loss, num_batches=2)
    unbatched = tf.data.Dataset.from_tensor_slices((x, datasets.digits().y))
    with self.assertRaisesRegex(ValueError, r"^Argument `dataset` must be batched"):
      problems.KerasModelFamily(_tiny_model(), unbatched, loss)
    with self.assertRaisesRegex(ValueError, r"^Argument `split_fractions` must be three"):
      problems.KerasModelFamily(_tiny_model(), data, loss, split_fractions=(0.5, 0.5))


class DocstringExamplesTest(tf.test.TestCase):

  def test_examples_run(self):
    for module in (problems, problems.mlp, problems.conv, problems.keras_model,
                   problems.quadratic):
      failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
      self.assertGreater(attempted, 0, module.__name__)
      self.assertEqual(failed, 0, module.__name__)


class ErrorsTest(tf.test.TestCase):

  def test_unknown_problem(self):
    with self.assertRaises(ValueError) as ctx:
      problems.get("mlp")
    self.assertEqual(str(ctx.exception), "Unknown problem 'mlp'. Valid problems: conv, "
                     "digits_mlp, general_tasks, logistic_regression, mnist_mlp, neural_art, quadratic, "
                     "robust_linear_regression, two_layer_net.")

  def test_unknown_config(self):
    with self.assertRaises(ValueError) as ctx:
      problems.get("digits_mlp", hidden=(3,))
    self.assertEqual(str(ctx.exception),
                     "Problem 'digits_mlp' got unexpected config ['hidden']. Allowed: ['seed', "
                     "'dataset', 'data_path', 'hidden_sizes', 'activation', 'batch_size', "
                     "'init_scale', 'horizon', 'projection_dim'].")

  def test_bad_activation(self):
    with self.assertRaises(ValueError) as ctx:
      problems.get("digits_mlp", activation="softplus")
    self.assertEqual(str(ctx.exception), "Argument `activation` must be one of ['relu', "
                     "'sigmoid', 'tanh']. Received: activation='softplus'")

  def test_cifar_without_data_path(self):
    with self.assertRaises(ValueError) as ctx:
      problems.get("conv", dataset="cifar")
    self.assertEqual(str(ctx.exception),
                     "Argument `data_path` must be the path to CIFAR-10 (a python-batches "
                     "directory or an .npz) when dataset='cifar'. Received: data_path=None")

  def test_bad_arguments(self):
    cases = [
        ("digits_mlp", {"hidden_sizes": (3, 0)}, "Argument `hidden_sizes` must be a (possibly "
         "empty) tuple of positive integers. Received: hidden_sizes=(3, 0)"),
        ("digits_mlp", {"batch_size": 0}, "Argument `batch_size` must be a positive integer. "
         "Received: batch_size=0"),
        ("digits_mlp", {"init_scale": -1.0}, "Argument `init_scale` must be a non-negative "
         "number or 'glorot'. Received: init_scale=-1.0"),
        ("digits_mlp", {"dataset": "svhn"}, "Argument `dataset` must be one of ['mnist', "
         "'digits', 'breast_cancer', 'wine', 'iris']. Received: dataset='svhn'"),
        ("conv", {"channels": ()}, "Argument `channels` must be a non-empty tuple of positive "
         "integers. Received: channels=()"),
        ("conv", {"data_path": "/x.npz"}, "Argument `data_path` must be None for dataset "
         "'digits' (it ships with scikit-learn). Received: data_path='/x.npz'"),
    ]
    for name, config, message in cases:
      with self.assertRaises(ValueError) as ctx:
        problems.get(name, **config)
      self.assertEqual(str(ctx.exception), message)


if __name__ == "__main__":
  tf.test.main()
