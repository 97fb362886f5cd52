"""The `mlp` rule's optional weight input (`weight_scale`): a learnable, state-dependent decay."""

import numpy as np
import tensorflow as tf

import keras_l2o
from scripts import meta_train_build


def _random_meta_params(rule, seed):
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(lambda a: rng.normal(size=a.shape).astype(np.float32),
                               rule.init_meta_params(0))


class WeightInputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.plain = keras_l2o.rules.get("mlp")
    self.weighted = keras_l2o.rules.get("mlp", weight_scale=10.0)
    rng = np.random.default_rng(1)
    self.grad = tf.constant(rng.normal(size=(6, 5)), tf.float32)
    self.var = tf.constant(rng.normal(size=(6, 5)), tf.float32)

  def test_off_by_default_and_left_out_of_the_config(self):
    self.assertNotIn("weight_scale", self.plain.get_config())
    self.assertEqual(self.weighted.get_config()["weight_scale"], 10.0)
    self.assertEqual((self.plain.num_features, self.weighted.num_features), (3, 4))
    self.assertEqual(self.weighted.meta_param_shapes()["hidden"]["kernel"], (4, 16))
    self.assertEqual(self.weighted.state_floats_per_parameter(), 3)
    with self.assertRaisesRegex(ValueError, "weight_scale"):
      keras_l2o.rules.get("mlp", weight_scale=-1.0)

  def test_initial_rule_and_padded_meta_params_do_not_change_the_update(self):
    plain_init = self.plain.init_meta_params(3)
    weighted_init = self.weighted.init_meta_params(3)
    self.assertAllEqual(weighted_init["hidden"]["kernel"][:3], plain_init["hidden"]["kernel"])
    self.assertAllEqual(weighted_init["hidden"]["kernel"][3], np.zeros(16))
    self.assertAllEqual(weighted_init["skip"][:, 0], [0.0, -1.0, 0.0, 0.0])
    trained = _random_meta_params(self.plain, seed=2)
    padded = self.weighted.meta_params_from(self.plain, trained)
    state = self.plain.init_state(self.var)
    expected, _ = self.plain.apply(trained, self.grad, self.var, state, 3)
    for apply in (self.weighted.apply, self.weighted.fast_apply):
      update, _ = apply(padded, self.grad, self.var, state, 3)
      self.assertAllClose(expected, update, rtol=1e-5, atol=1e-9)

  def test_the_weight_input_against_a_numpy_reference(self):
    params = _random_meta_params(self.weighted, seed=4)
    state = self.weighted.init_state(self.var)
    update, _ = self.weighted.apply(params, self.grad, self.var, state, 1)
    fast, _ = self.weighted.fast_apply(params, self.grad, self.var, state, 1)
    g, w = self.grad.numpy().ravel(), self.var.numpy().ravel()
    # Step 1: m_hat = s_hat = g and v_hat = g^2, so the first three inputs are g / (|g| + eps).
    r = g / (np.abs(g) + 1e-8)
    inputs = np.stack([r, r, r, 10.0 * w], axis=-1)
    hidden = np.maximum(inputs @ params["hidden"]["kernel"] + params["hidden"]["bias"], 0.0)
    out = inputs @ params["skip"] + hidden @ params["output"]["kernel"] + params["output"]["bias"]
    self.assertAllClose(1e-3 * out[:, 0].reshape(6, 5), update, rtol=1e-4, atol=1e-7)
    self.assertAllClose(update, fast, rtol=1e-5, atol=1e-8)

  def test_a_pure_decay_through_the_keras_optimizer(self):
    """skip = [0, 0, 0, -1]: each step scales the weights by 1 - 1e-3 * 10 (zero gradient)."""
    params = tf.nest.map_structure(np.zeros_like, self.weighted.init_meta_params(0))
    params["skip"][3, 0] = -1.0
    for jit_rule in (False, True):
      variable = tf.Variable(self.var)
      optimizer = keras_l2o.LearnedOptimizer(self.weighted, params, jit_rule=jit_rule)
      for _ in range(5):
        optimizer.apply_gradients([(tf.zeros_like(self.var), variable)])
      self.assertAllClose(self.var.numpy() * 0.99**5, variable.numpy(), rtol=1e-5)

  def test_other_configurations_are_refused_with_both_named(self):
    trained = _random_meta_params(self.plain, seed=5)
    wider = keras_l2o.rules.get("mlp", hidden_size=8, weight_scale=10.0)
    with self.assertRaisesRegex(ValueError, r"Meta-parameters of rule 'mlp' with configuration "
                                r"\{'hidden_size': 16.*do not fit rule 'mlp' with configuration "
                                r"\{'hidden_size': 8"):
      wider.meta_params_from(self.plain, trained)
    with self.assertRaisesRegex(ValueError, "do not fit"):  # the input cannot be dropped
      self.plain.meta_params_from(self.weighted, self.weighted.init_meta_params(0))

  def test_init_from_a_shipped_optimizer_pads_its_meta_params(self):
    shipped = keras_l2o.pretrained.get("l2o-mlp-general-pes").meta_params
    started = meta_train_build.starting_meta_params("pretrained:l2o-mlp-general-pes",
                                                    self.weighted)
    self.assertAllEqual(started["hidden"]["kernel"][:3], shipped["hidden"]["kernel"])
    self.assertAllEqual(started["skip"][3], [0.0])
    self.assertAllEqual(started["output"]["kernel"], shipped["output"]["kernel"])


if __name__ == "__main__":
  tf.test.main()
