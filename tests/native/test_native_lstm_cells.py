"""The lstm rule's layers through the native kernel with its gradient (keras_l2o/native/lstm_cells.py).

`lstm_cells.cells` must be `keras_l2o.rules.lstm.tf_cells` up to float
rounding, forward and backward, for every configuration `supports` accepts;
BPTT meta-training through it (`BPTTConfig.native_kernels`) must give the
meta-gradients of the reference within rounding.
"""

import doctest
import os

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from keras_l2o.native import build
from keras_l2o.native import library
from keras_l2o.native import lstm_cells
from keras_l2o.rules import lstm
from trainers import base as trainers_base
from trainers import bptt

BUILT = library.available(lstm_cells.KERNEL)
skip_reason = None if BUILT else (build.unbuildable_reason() or "the kernel is not built")
# Forward and backward within this fraction of the largest entry of each tensor
# (measured: up to 1.3e-6, sigmoid and tanh a few ulp from TensorFlow's).
TOLERANCE = 5e-6


def _inputs(n, hidden, layers, features, seed=0):
  rng = np.random.default_rng(seed)
  const = lambda shape, scale=1.0: tf.constant(rng.normal(size=shape) * scale, tf.float32)
  kernels = [const(((features if l == 0 else hidden) + hidden, 4 * hidden), 0.3)
             for l in range(layers)]
  biases = [const((4 * hidden,)) for _ in range(layers)]
  state = [const((n, hidden), 2.0 if i % 2 else 0.5) for i in range(2 * layers)]
  return const((n, features)), state, kernels, biases


def _forward_and_gradients(cells, x, state, kernels, biases, seed=1):
  """New state and the gradients of a random linear function of it."""
  rng = np.random.default_rng(seed)
  weights = [tf.constant(rng.normal(size=s.shape), tf.float32) for s in state]
  with tf.GradientTape() as tape:
    tape.watch([x, state, kernels, biases])
    new_state = cells(x, state, kernels, biases)
    loss = tf.add_n([tf.reduce_sum(s * w) for s, w in zip(new_state, weights)])
  return list(new_state), tape.gradient(loss, [x, state, kernels, biases])


def _relative(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / max(
      float(np.max(np.abs(np.asarray(b)))), 1e-30)


def _op_types(fn, *args):
  graph = tf.function(fn).get_concrete_function(*args).graph
  return {op.type for op in graph.get_operations()}


class CellsTest(tf.test.TestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    if skip_reason:
      self.skipTest(skip_reason)

  def test_kernel_is_built_and_its_docstring_example_runs(self):
    self.assertFalse(build.is_stale(lstm_cells.KERNEL))
    failed, attempted = doctest.testmod(lstm_cells)
    self.assertGreater(attempted, 0)
    self.assertEqual(failed, 0)

  @parameterized.parameters(
      (1280, 20, 2, 2),   # the paper's rule on the quadratic setup
      (1, 20, 2, 2),
      (37, 16, 1, 1),     # a partial last block, no preprocessing
      (5, 4, 3, 2),
      (100, 64, 2, 2),    # the largest hidden size
      (33, 8, 4, 3))
  def test_forward_and_gradients_match_tensorflow(self, n, hidden, layers, features):
    inputs = _inputs(n, hidden, layers, features)
    native_state, native_grads = _forward_and_gradients(lstm_cells.cells, *inputs)
    ref_state, ref_grads = _forward_and_gradients(lstm.tf_cells, *inputs)
    for a, b in zip(native_state, ref_state):
      self.assertLess(_relative(a, b), TOLERANCE)
    flat_native, flat_ref = tf.nest.flatten(native_grads), tf.nest.flatten(ref_grads)
    self.assertLen(flat_native, 1 + 2 * layers + 2 * layers)
    for a, b in zip(flat_native, flat_ref):
      self.assertLess(_relative(a, b), TOLERANCE)
      self.assertGreater(float(np.max(np.abs(b))), 0.0)

  def test_the_native_ops_run_forward_and_backward(self):
    x, state, kernels, biases = _inputs(20, 20, 2, 2)

    def loss_and_grad(x):
      with tf.GradientTape() as tape:
        tape.watch(kernels)
        loss = tf.reduce_sum(lstm_cells.cells(x, state, kernels, biases)[-2])
      return tape.gradient(loss, kernels)

    types = _op_types(loss_and_grad, x)
    self.assertIn("KerasL2OLstmCells", types)
    self.assertIn("KerasL2OLstmCellsGrad", types)
    self.assertNotIn("Sigmoid", types)
    self.assertIn("Sigmoid", _op_types(lambda x: lstm.tf_cells(x, state, kernels, biases), x))

  def test_rows_are_independent_and_blocks_are_exact(self):
    # 17 rows: one full block of 16 and a partial one. Each row gives bit for bit
    # what it gives alone (same lanes, same operations).
    x, state, kernels, biases = _inputs(17, 20, 2, 2)
    whole = lstm_cells.cells(x, state, kernels, biases)
    first = lstm_cells.cells(x[:16], [s[:16] for s in state], kernels, biases)
    last = lstm_cells.cells(x[16:], [s[16:] for s in state], kernels, biases)
    for w, f, l in zip(whole, first, last):
      self.assertAllEqual(w[:16], f)
      self.assertAllEqual(w[16:], l)

  def test_ops_running_side_by_side_share_threads_without_changing_a_bit(self):
    # The op hands blocks to idle inter-op threads. Four independent cells ops in
    # one graph run side by side and compete for those threads; each must give
    # what it gives alone, every time (no race, no deadlock).
    batches = [_inputs(4099, 20, 2, 2, seed=s) for s in range(4)]

    @tf.function
    def together():
      return [lstm_cells.cells(*p) for p in batches]

    alone = [lstm_cells.cells(*p) for p in batches]
    for _ in range(5):
      for outputs, expected in zip(together(), alone):
        for a, b in zip(outputs, expected):
          self.assertAllEqual(a, b)
    first = tf.nest.flatten(_forward_and_gradients(lstm_cells.cells, *batches[0]))
    second = tf.nest.flatten(_forward_and_gradients(lstm_cells.cells, *batches[0]))
    for a, b in zip(first, second):
      self.assertAllEqual(a, b)

  def test_nan_poisons_only_its_row(self):
    x, state, kernels, biases = _inputs(40, 20, 2, 2)
    poisoned = tf.tensor_scatter_nd_update(x, [[7, 0]], [np.nan])
    clean = lstm_cells.cells(x, state, kernels, biases)
    dirty = lstm_cells.cells(poisoned, state, kernels, biases)
    for c, d in zip(clean, dirty):
      self.assertTrue(np.all(np.isnan(d[7])))
      rest = np.delete(np.asarray(d), 7, axis=0)
      self.assertAllEqual(rest, np.delete(np.asarray(c), 7, axis=0))

  def test_gradients_through_one_output_match_tensorflow(self):
    x, state, kernels, biases = _inputs(30, 16, 2, 2)
    with tf.GradientTape(persistent=True) as tape:
      tape.watch([x, kernels])
      native = lstm_cells.cells(x, state, kernels, biases)[2]  # layer 2's h only
      reference = lstm.tf_cells(x, state, kernels, biases)[2]
      native_loss, reference_loss = tf.reduce_sum(native), tf.reduce_sum(reference)
    for a, b in zip(tape.gradient(native_loss, [x, *kernels]),
                    tape.gradient(reference_loss, [x, *kernels])):
      self.assertLess(_relative(a, b), TOLERANCE)

  def test_half_precision_keeps_tensorflow_ops(self):
    x, state, kernels, biases = _inputs(9, 4, 1, 2)
    cast = lambda ts: [tf.cast(t, tf.float16) for t in ts]
    native = lstm_cells.cells(tf.cast(x, tf.float16), cast(state), cast(kernels), cast(biases))
    reference = lstm.tf_cells(tf.cast(x, tf.float16), cast(state), cast(kernels), cast(biases))
    for a, b in zip(native, reference):
      self.assertEqual(a.dtype, tf.float16)
      self.assertAllEqual(a, b)

  def test_bad_inputs_are_refused_with_what_was_received(self):
    ops = library.load(lstm_cells.KERNEL)
    x, state, kernels, biases = _inputs(8, 20, 2, 2)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"layer 2: kernel \[41,80\] and bias \[80\] do not match "
                                r"\[40, 80\] and \[80\]"):
      ops.keras_l2o_lstm_cells(x, state, [kernels[0], tf.zeros([41, 80])], biases)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"hidden size must be a multiple of 4 up to 64; received a bias "
                                r"of \[24\]"):
      ops.keras_l2o_lstm_cells(x[:, :1], [tf.zeros([8, 6])] * 2, [tf.zeros([7, 24])],
                               [tf.zeros([24])])
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"state tensor 1 has shape \[7,20\]; expected \[8, 20\]"):
      ops.keras_l2o_lstm_cells(x, [state[0], state[1][:7], *state[2:]], kernels, biases)
    with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                r"d_new_state 3 has shape \[8,4\]; expected \[8,20\]"):
      ops.keras_l2o_lstm_cells_grad(x, state, kernels, biases,
                                    [*state[:3], tf.zeros([8, 4])])


class MetaTrainingTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    if skip_reason:
      self.skipTest(skip_reason)

  def test_for_meta_training_swaps_the_cells_of_supported_rules_only(self):
    rule = keras_l2o.rules.get("lstm")
    native = lstm_cells.for_meta_training(rule)
    self.assertIsNot(native, rule)
    self.assertIs(native.cells, lstm_cells.cells)
    self.assertIs(rule.cells, lstm.tf_cells)  # the original is untouched
    self.assertEqual(native.get_config(), rule.get_config())
    for unsupported in (keras_l2o.rules.get("mlp"), keras_l2o.rules.get("lstm", hidden_size=6),
                        keras_l2o.rules.get("gps_lstm")):
      self.assertIs(lstm_cells.for_meta_training(unsupported), unsupported)

  def test_meta_gradient_of_an_unroll_matches_the_reference(self):
    rule = keras_l2o.rules.get("lstm")
    family = problems.get("quadratic", seed=3, num_quadratics=32)
    tensors = family.sample("train", 0).tensors
    rng = np.random.default_rng(0)
    meta = tf.nest.map_structure(
        lambda t: tf.Variable(t.numpy() + 0.1 * rng.normal(size=t.shape).astype(np.float32)),
        rule.init_meta_params(0))

    def meta_gradient(r):
      state = unroll_lib.init_state(r, family, tensors)
      with tf.GradientTape() as tape:
        losses, final, _ = unroll_lib.unroll(r, meta, family, tensors, state, 10)
        objective = tf.reduce_sum(losses) + final
      return objective, tape.gradient(objective, tf.nest.flatten(meta))

    native_objective, native = tf.function(lambda: meta_gradient(
        lstm_cells.for_meta_training(rule)))()
    ref_objective, reference = tf.function(lambda: meta_gradient(rule))()
    self.assertAllClose(native_objective, ref_objective, rtol=1e-5)
    self.assertAllClose(tf.linalg.global_norm(native), tf.linalg.global_norm(reference),
                        rtol=1e-4)
    for a, b in zip(native, reference):
      self.assertLess(_relative(a, b), 1e-4)

  def test_bptt_trainer_with_and_without_native_kernels(self):
    family = problems.get("quadratic", seed=1, num_quadratics=16)
    results = {}
    for native in (True, False):
      config = bptt.BPTTConfig(num_steps=4, unroll_length=5, horizon=10, validation_every=4,
                               validation_problems=2, checkpoint_every=4, log_every=2,
                               native_kernels=native)
      save_dir = os.path.join(self.get_temp_dir(), f"native_{native}")
      trainer = bptt.BPTTTrainer(keras_l2o.rules.get("lstm"), family, config, save_dir)
      self.assertEqual(trainer.native_kernels_used, native)
      trainer.run()
      saved = trainers_base.read_config(save_dir)
      self.assertEqual(saved["native_kernels_used"], native)
      self.assertEqual(saved["bptt"]["native_kernels"], native)
      results[native] = [v.numpy() for v in tf.nest.flatten(trainer.meta_vars)]
    # 4 meta-steps of Adam (learning rate 1e-3) from the same start: equal up to rounding.
    for a, b in zip(results[True], results[False]):
      self.assertAllClose(a, b, atol=1e-5, rtol=0)
    self.assertFalse(all(np.array_equal(a, b) for a, b in zip(results[True], results[False])))

  def test_bad_native_kernels_value_is_refused(self):
    with self.assertRaisesRegex(ValueError, r"`native_kernels` must be True or False\. "
                                r"Received: native_kernels='yes'"):
      bptt.BPTTConfig(native_kernels="yes").validate()


if __name__ == "__main__":
  tf.test.main()
