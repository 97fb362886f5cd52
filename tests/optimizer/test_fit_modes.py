"""The learned rules train under every `fit` configuration; non-finite gradients.

The lstm and mlp rules, with their initial meta-parameters, train a digits MLP
in every `jit_compile` mode, with float32 / float16 / bfloat16 variables, under
the mixed-precision policies and inside `keras.optimizers.LossScaleOptimizer`.
Then the three `nonfinite` modes: "skip", "zero" and "raise".
"""


from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import keras_l2o

from tests import testing_utils

LEARNED_RULES = ("lstm", "mlp")
EPOCHS = 4
NUM_SAMPLES = 256
BATCH_SIZE = 16
STEPS = EPOCHS * NUM_SAMPLES // BATCH_SIZE
# Smallest drop of the epoch loss (from about 2.1-2.4) that counts as training
# in these 64 steps: the mlp rule starts as Adam(1e-3) and loses ~0.27, the
# lstm rule (steps of ~0.01 along minus the sign of a momentum) ~1.6.
MIN_LOSS_DROP = {"lstm": 1.0, "mlp": 0.15}


def _fit(model, optimizer, jit_compile=False, build_first=True):
  return testing_utils.compile_and_fit(model, optimizer, epochs=EPOCHS, num_samples=NUM_SAMPLES,
                                       batch_size=BATCH_SIZE, jit_compile=jit_compile,
                                       build_first=build_first)


class FitModesTest(tf.test.TestCase, parameterized.TestCase):

  def tearDown(self):
    keras.mixed_precision.set_global_policy("float32")  # whatever a test did
    super().tearDown()

  def assertTrains(self, model, losses, rule):
    """Epoch losses finite, decreasing, dropping clearly; all weights finite."""
    self.assertLen(losses, EPOCHS)
    self.assertTrue(np.all(np.isfinite(losses)), losses)
    for weight in testing_utils.weights_of(model):
      self.assertTrue(np.all(np.isfinite(weight)))
    self.assertTrue(np.all(np.diff(losses) < 0), f"epoch losses do not decrease: {losses}")
    self.assertLess(losses[-1], losses[0] - MIN_LOSS_DROP[rule], f"epoch losses: {losses}")

  def assertStateFinite(self, optimizer, model):
    for variable in model.trainable_variables:
      for slot in optimizer.state_for(variable):
        self.assertEqual(slot.dtype, "float32")
        self.assertTrue(np.all(np.isfinite(keras.ops.convert_to_numpy(slot))))

  @parameterized.named_parameters(
      (f"{rule}_{str(mode).lower()}", rule, mode)
      for rule in LEARNED_RULES for mode in (False, True, "auto"))
  def test_jit_compile_modes(self, rule, jit_compile):
    model = testing_utils.digits_mlp(seed=0)
    optimizer = keras_l2o.LearnedOptimizer(rule)
    # Here `fit` builds the optimizer inside the traced train function (the
    # other tests build it first, which saves a second trace).
    losses = _fit(model, optimizer, jit_compile=jit_compile, build_first=False)
    if jit_compile is True:
      self.assertTrue(model.jit_compile)
    # ("auto" means XLA only when a GPU/TPU is present: on CPU it runs the graph.)
    self.assertEqual(int(optimizer.iterations), STEPS)
    self.assertTrains(model, losses, rule)
    self.assertStateFinite(optimizer, model)

  # float32 variables are the ones of test_jit_compile_modes.
  @parameterized.named_parameters(
      (f"{rule}_{dtype}", rule, dtype) for rule in LEARNED_RULES for dtype in ("float16", "bfloat16"))
  def test_half_precision_variables(self, rule, dtype):
    model = testing_utils.digits_mlp(seed=0, dtype=dtype)
    self.assertEqual({w.dtype for w in model.weights}, {dtype})
    optimizer = keras_l2o.LearnedOptimizer(rule)
    losses = _fit(model, optimizer)
    self.assertEqual({w.dtype for w in model.weights}, {dtype})
    self.assertEqual(int(optimizer.iterations), STEPS)
    self.assertTrains(model, losses, rule)
    self.assertStateFinite(optimizer, model)  # half-precision variables get float32 state

  @parameterized.named_parameters(
      (f"{rule}_{policy}", rule, policy)
      for rule in LEARNED_RULES for policy in ("mixed_float16", "mixed_bfloat16"))
  def test_mixed_precision_policy(self, rule, policy):
    keras.mixed_precision.set_global_policy(policy)
    model = testing_utils.digits_mlp(seed=0)
    optimizer = keras_l2o.LearnedOptimizer(rule)
    losses = _fit(model, optimizer)
    self.assertEqual(model.layers[0].compute_dtype, policy.split("_")[1])
    self.assertEqual({w.dtype for w in model.weights}, {"float32"})
    if policy == "mixed_float16":  # Keras wraps the optimizer in a LossScaleOptimizer
      self.assertIsInstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
      self.assertIs(model.optimizer.inner_optimizer, optimizer)
    self.assertGreater(int(optimizer.iterations), STEPS // 2)
    self.assertTrains(model, losses, rule)
    self.assertStateFinite(optimizer, model)

  @parameterized.named_parameters((rule, rule) for rule in LEARNED_RULES)
  def test_loss_scale_optimizer(self, rule):
    model = testing_utils.digits_mlp(seed=0)
    inner = keras_l2o.LearnedOptimizer(rule)
    optimizer = keras.optimizers.LossScaleOptimizer(inner, initial_scale=2.0**10)
    losses = _fit(model, optimizer)
    self.assertEqual(int(inner.iterations), STEPS)  # float32: no step overflows
    self.assertTrains(model, losses, rule)
    self.assertStateFinite(inner, model)


def _variables():
  rng = np.random.default_rng(0)
  return [keras.Variable(rng.normal(size=(3, 4)).astype(np.float32), name="kernel"),
          keras.Variable(rng.normal(size=(5, 2)).astype(np.float32), name="table")]


def _gradients(bad=None):
  """A dense gradient and a sparse one (IndexedSlices); `bad` is NaN / Inf put in one of them."""
  dense = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
  rows = np.array([[0.5, -0.25], [1.0, 2.0]], np.float32)
  if bad == "dense_nan":
    dense[1, 2] = np.nan
  if bad == "sparse_inf":
    rows[1, 0] = np.inf
  return [tf.constant(dense),
          tf.IndexedSlices(tf.constant(rows), tf.constant([1, 3]), tf.constant([5, 2]))]


def _snapshot(optimizer, variables):
  return ([v.numpy() for v in variables],
          [[keras.ops.convert_to_numpy(s) for s in optimizer.state_for(v)] for v in variables],
          int(optimizer.iterations))


class NonfiniteTest(tf.test.TestCase, parameterized.TestCase):

  def assertSnapshotsEqual(self, first, second):
    self.assertEqual(first[2], second[2])  # iterations
    for a, b in zip(tf.nest.flatten(first[:2]), tf.nest.flatten(second[:2])):
      self.assertAllEqual(a, b)

  @parameterized.named_parameters(
      ("eager_dense_nan", "dense_nan", "eager"),
      ("eager_sparse_inf", "sparse_inf", "eager"),
      ("tf_function_dense_nan", "dense_nan", "tf_function"),
      ("tf_function_sparse_inf", "sparse_inf", "tf_function"),
      ("xla_function_sparse_inf", "sparse_inf", "xla_function"),
  )
  def test_skip_leaves_everything_untouched(self, bad, execution):
    # A NaN / Inf in either gradient skips the whole step: the other variable,
    # whose gradient is finite, is not updated either.
    variables = _variables()
    optimizer = keras_l2o.LearnedOptimizer("lstm", learning_rate=0.1)  # nonfinite="skip"
    self.assertEqual(optimizer.nonfinite, "skip")

    def apply(grads):
      optimizer.apply(grads, variables)

    optimizer.build(variables)
    if execution != "eager":
      apply = tf.function(apply, jit_compile=execution == "xla_function")
    apply(_gradients())  # a finite step first, so the state is not all zeros
    before = _snapshot(optimizer, variables)
    self.assertEqual(before[2], 1)
    apply(_gradients(bad))
    self.assertSnapshotsEqual(_snapshot(optimizer, variables), before)
    apply(_gradients())  # and the optimizer carries on afterwards
    after = _snapshot(optimizer, variables)
    self.assertEqual(after[2], 2)
    self.assertNotAllClose(after[0][0], before[0][0])

  @parameterized.named_parameters(("dense_nan", "dense_nan"), ("sparse_inf", "sparse_inf"))
  def test_zero_treats_nonfinite_entries_as_zero(self, bad):
    variables, zeroed_variables = _variables(), _variables()
    optimizer = keras_l2o.LearnedOptimizer("lstm", learning_rate=0.1, nonfinite="zero")
    reference = keras_l2o.LearnedOptimizer("lstm", learning_rate=0.1)
    dense, sparse = _gradients(bad)
    zeroed = [tf.where(tf.math.is_finite(dense), dense, 0.0),
              tf.IndexedSlices(tf.where(tf.math.is_finite(sparse.values), sparse.values, 0.0),
                               sparse.indices, sparse.dense_shape)]
    for grads_a, grads_b in ((_gradients(), _gradients()), (_gradients(bad), zeroed)):
      optimizer.apply(grads_a, variables)
      reference.apply(grads_b, zeroed_variables)
    self.assertSnapshotsEqual(_snapshot(optimizer, variables),
                              _snapshot(reference, zeroed_variables))
    self.assertEqual(int(optimizer.iterations), 2)
    for v in variables:
      self.assertTrue(np.all(np.isfinite(v.numpy())))

  @parameterized.named_parameters(
      ("eager_dense_nan", "dense_nan", "eager"),
      ("eager_sparse_inf", "sparse_inf", "eager"),
      ("tf_function_dense_nan", "dense_nan", "tf_function"),
  )
  def test_raise(self, bad, execution):
    variables = _variables()
    optimizer = keras_l2o.LearnedOptimizer("adam", nonfinite="raise")

    def apply(grads):
      optimizer.apply(grads, variables)

    optimizer.build(variables)
    if execution != "eager":
      apply = tf.function(apply)
    apply(_gradients())
    before = _snapshot(optimizer, variables)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "NaN or Inf"):
      apply(_gradients(bad))
    if execution == "eager":  # (tf.function: see the next test)
      self.assertSnapshotsEqual(_snapshot(optimizer, variables), before)

  def test_raise_in_tf_function_leaves_iterations_untouched(self):
    # The failed step must not count: in eager mode `iterations` stays put,
    # inside a tf.function it must too.
    variables = _variables()
    optimizer = keras_l2o.LearnedOptimizer("adam", nonfinite="raise")
    apply = tf.function(lambda grads: optimizer.apply(grads, variables))
    apply(_gradients())
    before = _snapshot(optimizer, variables)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError, "NaN or Inf"):
      apply(_gradients("dense_nan"))
    self.assertSnapshotsEqual(_snapshot(optimizer, variables), before)

  def test_skip_under_jit_compiled_fit(self):
    # One batch of inputs is NaN, so its loss and all its gradients are NaN.
    x, y = testing_utils.digits(128)
    poisoned = x.copy()
    poisoned[32:48] = np.nan  # batch 2 of 8
    clean = np.ones(len(x), bool)
    clean[32:48] = False

    model = testing_utils.digits_mlp(seed=0)
    optimizer = keras_l2o.LearnedOptimizer("adam", learning_rate=1e-2)
    losses = testing_utils.compile_and_fit(model, optimizer, epochs=2, batch_size=16,
                                           jit_compile=True, x=poisoned, y=y, build_first=True)
    self.assertTrue(model.jit_compile)
    self.assertTrue(np.all(np.isnan(losses)))  # the epoch means include the NaN batch
    self.assertEqual(int(optimizer.iterations), 14)  # 2 epochs x 7 finite batches

    reference = testing_utils.digits_mlp(seed=0)
    testing_utils.compile_and_fit(reference, keras_l2o.LearnedOptimizer("adam", learning_rate=1e-2),
                                  epochs=2, batch_size=16, x=x[clean], y=y[clean],
                                  build_first=True)
    weights = testing_utils.weights_of(model)
    for weight in weights:
      self.assertTrue(np.all(np.isfinite(weight)))
    # XLA against the graph executor: equal up to rounding.
    self.assertLess(testing_utils.max_abs_diff(weights, testing_utils.weights_of(reference)), 1e-6)


if __name__ == "__main__":
  tf.test.main()
