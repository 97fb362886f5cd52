"""The last gaps of the Keras optimizer contract: names, sparse gradients, schedules."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_l2o


class NamesTest(tf.test.TestCase):

  def test_two_optimizers_of_one_rule_get_unique_names_and_variable_paths(self):
    first, second = keras_l2o.LearnedOptimizer("mlp"), keras_l2o.LearnedOptimizer("mlp")
    self.assertNotEqual(first.name, second.name)
    for optimizer in (first, second):  # Keras's scheme: prefix, prefix_1, prefix_2, ...
      self.assertRegex(optimizer.name, r"^learned_optimizer_mlp(_\d+)?$")
    a, b = keras.Variable(np.ones(3, np.float32)), keras.Variable(np.ones(3, np.float32))
    first.build([a])
    second.build([b])
    paths = [v.path for v in first.variables], [v.path for v in second.variables]
    self.assertEmpty(set(paths[0]) & set(paths[1]))
    # Keras's own optimizers behave the same way.
    adams = keras.optimizers.Adam(), keras.optimizers.Adam()
    self.assertNotEqual(adams[0].name, adams[1].name)

  def test_two_optimizers_in_one_state_tree(self):
    """A model whose state holds two optimizers (one per layer group) saves and restores."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.Dense(3)(inputs)))
    optimizers = [keras_l2o.LearnedOptimizer("adam", learning_rate=0.1),
                  keras_l2o.LearnedOptimizer("adam", learning_rate=0.1)]
    groups = [model.layers[1].trainable_variables, model.layers[2].trainable_variables]
    for optimizer, group in zip(optimizers, groups):
      optimizer.build(group)
      optimizer.apply([tf.ones_like(v) for v in group], group)
    tree = {}
    for optimizer in optimizers:
      for v in optimizer.variables:
        self.assertNotIn(v.path, tree)  # no duplicate variable path
        tree[v.path] = v.numpy()
    checkpoint = tf.train.Checkpoint(first=optimizers[0], second=optimizers[1])
    path = checkpoint.write(os.path.join(self.get_temp_dir(), "two"))
    fresh = [keras_l2o.LearnedOptimizer("adam", learning_rate=0.1) for _ in range(2)]
    for optimizer, group in zip(fresh, groups):
      optimizer.build(group)
    tf.train.Checkpoint(first=fresh[0], second=fresh[1]).read(path).assert_consumed()
    for old, new in zip(optimizers, fresh):
      for u, v in zip(old.variables, new.variables):
        self.assertAllEqual(u.numpy(), v.numpy())


def _embedding_model(rows=50, dim=8, seed=0):
  keras.utils.set_random_seed(seed)
  return keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(rows, dim),
                           keras.layers.Flatten(), keras.layers.Dense(1)])


class SparseGradientTest(tf.test.TestCase):

  def test_mlp_factored_trains_a_model_with_an_embedding(self):
    for name in ("mlp_factored", "l2o-mlp-factored"):
      with self.subTest(optimizer=name):
        model = _embedding_model()
        optimizer = (keras_l2o.pretrained.get(name) if name.startswith("l2o")
                     else keras_l2o.LearnedOptimizer(name))
        model.compile(optimizer, loss="mse")
        rng = np.random.default_rng(0)
        x, y = rng.integers(0, 50, (64, 3)), rng.normal(size=(64, 1))
        losses = model.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False).history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[-1], losses[0])
        rows, cols = optimizer.state_for(model.layers[0].embeddings)[2:]
        self.assertEqual((tuple(rows.shape), tuple(cols.shape)), ((50,), (8,)))  # factored

  def _apply_sparse(self, optimizer, table, steps=3, dense=False):
    rng = np.random.default_rng(1)
    for _ in range(steps):
      indices = tf.constant([3, 7, 3, 40], tf.int64)  # row 3 twice: summed, as densifying does
      values = tf.constant(rng.normal(size=(4, 5)), tf.float32)
      gradient = tf.IndexedSlices(values, indices, tf.constant(table.shape, tf.int64))
      optimizer.apply([tf.convert_to_tensor(gradient) if dense else gradient], [table])
    return table.numpy()

  def test_row_sparse_rules_update_only_touched_rows_with_the_dense_numbers(self):
    init = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    keras_optimizers = {"sgd": lambda: keras.optimizers.SGD(0.1),
                        "adagrad": lambda: keras.optimizers.Adagrad(0.1)}
    for name, keras_optimizer in keras_optimizers.items():
      with self.subTest(rule=name):
        self.assertTrue(keras_l2o.rules.get(name).row_sparse)
        sparse_opt = keras_l2o.LearnedOptimizer(name, learning_rate=0.1)
        sparse = self._apply_sparse(sparse_opt, keras.Variable(init))
        dense = self._apply_sparse(keras_l2o.LearnedOptimizer(name, learning_rate=0.1),
                                   keras.Variable(init), dense=True)
        self.assertAllEqual(sparse, dense)  # the same numbers as the dense step
        untouched = np.setdiff1d(np.arange(60), [3, 7, 40])
        self.assertAllEqual(sparse[untouched], init[untouched])
        self.assertGreater(np.abs(sparse[[3, 7, 40]] - init[[3, 7, 40]]).min(), 1e-4)
        reference = self._apply_sparse(keras_optimizer(), keras.Variable(init), dense=True)
        self.assertAllClose(sparse, reference, rtol=1e-6, atol=1e-6)

  def test_row_sparse_step_scatters_instead_of_densifying(self):
    def op_types(rule):
      table = keras.Variable(np.zeros((1000, 4), np.float32))
      optimizer = keras_l2o.LearnedOptimizer(rule, learning_rate=0.1)
      optimizer.build([table])
      gradient = tf.IndexedSlices(tf.ones([2, 4]), tf.constant([1, 2], tf.int64),
                                  tf.constant([1000, 4], tf.int64))
      graph = tf.function(lambda g: optimizer.apply([g], [table])).get_concrete_function(
          gradient).graph.as_graph_def()
      return ({node.op for node in graph.node}
              | {node.op for f in graph.library.function for node in f.node_def})
    adagrad = op_types("adagrad")
    self.assertIn("ResourceScatterAdd", adagrad)  # the table's touched rows
    self.assertIn("ResourceScatterUpdate", adagrad)  # the accumulator's touched rows
    self.assertNotIn("ResourceScatterAdd", op_types("adam"))  # densified

  def test_other_rules_densify_and_match_their_dense_step(self):
    init = np.random.default_rng(0).normal(size=(60, 5)).astype(np.float32)
    for name in ("adam", "momentum", "mlp"):
      with self.subTest(rule=name):
        self.assertFalse(keras_l2o.rules.get(name).row_sparse)
        sparse = self._apply_sparse(keras_l2o.LearnedOptimizer(name, learning_rate=0.1),
                                    keras.Variable(init))
        dense = self._apply_sparse(keras_l2o.LearnedOptimizer(name, learning_rate=0.1),
                                   keras.Variable(init), dense=True)
        self.assertAllEqual(sparse, dense)


def _train(optimizer, steps=6):
  var = keras.Variable(np.linspace(-1.0, 1.0, 5).astype(np.float32))
  for t in range(steps):
    optimizer.apply([tf.constant(np.cos(np.arange(5.0) * (t + 1)), tf.float32)], [var])
  return var.numpy()


class ScheduleTest(tf.test.TestCase):
  """Hand-designed rules equal Keras under a fast learning-rate decay, momentum rules included."""

  def _schedule(self):
    return keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)

  def test_every_hand_designed_rule_equals_keras_under_a_schedule(self):
    pairs = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam,
             "adagrad": keras.optimizers.Adagrad, "rmsprop": keras.optimizers.RMSprop,
             "momentum": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9),
             "nag": lambda learning_rate: keras.optimizers.SGD(learning_rate, momentum=0.9,
                                                               nesterov=True)}
    for name, keras_class in pairs.items():
      with self.subTest(rule=name):
        ours = _train(keras_l2o.LearnedOptimizer(name, learning_rate=self._schedule()))
        self.assertAllClose(ours, _train(keras_class(learning_rate=self._schedule())),
                            rtol=1e-6, atol=1e-6)
    rule = keras_l2o.rules.get("rmsprop", momentum=0.9, centered=True)
    self.assertAllClose(_train(keras_l2o.LearnedOptimizer(rule, learning_rate=self._schedule())),
                        _train(keras.optimizers.RMSprop(self._schedule(), momentum=0.9,
                                                        centered=True)), rtol=1e-6, atol=1e-6)

  def test_momentum_folds_the_rate_into_the_velocity(self):
    """`m <- mu m - lr_t g; var += m` (Keras's), not `m <- mu m - g; var += lr_t m`."""
    grads = [np.cos(np.arange(5.0) * (t + 1)) for t in range(6)]
    rates = [0.5 * 0.5 ** t for t in range(6)]
    folded, unfolded = np.linspace(-1.0, 1.0, 5), np.linspace(-1.0, 1.0, 5)
    m_folded, m_unfolded = np.zeros(5), np.zeros(5)
    for g, lr in zip(grads, rates):
      m_folded = 0.9 * m_folded - lr * g
      folded = folded + m_folded
      m_unfolded = 0.9 * m_unfolded - g
      unfolded = unfolded + lr * m_unfolded
    ours = _train(keras_l2o.LearnedOptimizer("momentum", learning_rate=self._schedule()))
    self.assertAllClose(ours, folded, rtol=1e-5, atol=1e-6)
    self.assertGreater(np.abs(ours - unfolded).max(), 0.02)  # what the rule computed before
    # With a constant rate both conventions agree, to the bit with Keras.
    self.assertAllEqual(_train(keras_l2o.LearnedOptimizer("momentum", learning_rate=0.1)),
                        _train(keras.optimizers.SGD(0.1, momentum=0.9)))


if __name__ == "__main__":
  tf.test.main()
