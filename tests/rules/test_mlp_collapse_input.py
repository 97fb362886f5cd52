"""The `mlp` rule's optional collapse input (`collapse_decades`): how far a tensor's gradient fell."""

import math
import os

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o.rules import mlp


def _reference_collapse(grads, decades):
  """NumPy: the collapse input at each step for a sequence of gradients of one tensor."""
  average, peak, out = 0.0, 0.0, []
  for t, g in enumerate(grads, start=1):
    average = 0.9 * average + 0.1 * float(np.mean(np.square(g)))
    current = average / (1.0 - 0.9**t)
    peak = max(peak, current)
    f = (math.log(peak + 1e-30) - math.log(current + 1e-30)) / (math.log(10.0) * decades)
    out.append(min(max(f, 0.0), 2.0))
  return out


def _falling_gradients(rng, scale=1.0):
  """200 gradients of a [4, 3] tensor: 10 growing, then 190 falling 10x in RMS every 20 steps
  down to 1e-3 of the start."""
  base = rng.normal(size=(4, 3))
  factors = [1.0 + 0.1 * t for t in range(10)] + [10.0**-min(t // 20, 3) for t in range(190)]
  return [scale * f * base for f in factors]


class CollapseInputTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.plain = keras_l2o.rules.get("mlp")
    self.weighted = keras_l2o.rules.get("mlp", weight_scale=10.0)
    self.both = keras_l2o.rules.get("mlp", weight_scale=10.0, collapse_decades=4.0)
    self.collapse = keras_l2o.rules.get("mlp", collapse_decades=2.0)

  def test_configuration_state_and_errors(self):
    self.assertNotIn("collapse_decades", self.weighted.get_config())
    self.assertEqual(self.both.get_config()["collapse_decades"], 4.0)
    self.assertEqual(keras_l2o.rules.get("mlp", **self.both.get_config()), self.both)
    self.assertEqual((self.collapse.num_features, self.both.num_features), (4, 5))
    self.assertEqual(self.both.meta_param_shapes()["hidden"]["kernel"], (5, 16))
    self.assertEqual(self.both.state_fields,
                     ("momentum", "slow_momentum", "velocity", "gradient_scale"))
    state = self.both.init_state(tf.zeros([7, 5]))
    self.assertEqual([tuple(s.shape) for s in state], [(7, 5)] * 3 + [(1, 2)])
    self.assertEqual(self.both.state_floats_per_parameter(), 3)
    self.assertFalse(self.both.layout_free(tf.TensorShape([7, 5])))
    self.assertTrue(self.weighted.layout_free(tf.TensorShape([7, 5])))
    with self.assertRaisesRegex(ValueError, r"collapse_decades.*Received: collapse_decades=0"):
      keras_l2o.rules.get("mlp", collapse_decades=0)
    with self.assertRaisesRegex(ValueError, r"not supported by rule 'mlp_factored'.*=4\.0"):
      keras_l2o.rules.get("mlp_factored", collapse_decades=4.0)
    with self.assertRaisesRegex(ValueError, r"gated_weight=True` needs `weight_scale` and "
                                r"`collapse_decades`. Received: weight_scale=None, "
                                r"collapse_decades=4\.0"):
      keras_l2o.rules.get("mlp", collapse_decades=4.0, gated_weight=True)
    with self.assertRaisesRegex(ValueError, r"gated_weight` must be None or True. Received: "
                                r"gated_weight=False"):
      keras_l2o.rules.get("mlp", gated_weight=False)

  def test_the_collapse_input_against_a_numpy_reference(self):
    rng = np.random.default_rng(0)
    for scale in (1.0, 1e-4, 1e4):  # the input does not depend on the gradient's scale
      grads = _falling_gradients(rng, scale)
      state = tf.zeros([1, 2])
      got = []
      for t, g in enumerate(grads, start=1):
        f, state = mlp.collapse_input(tf.constant(g, tf.float32), state, t, collapse_decades=4.0)
        got.append(float(f))
      expected = _reference_collapse(grads, 4.0)
      self.assertAllClose(expected, got, rtol=1e-4, atol=1e-5)
      self.assertAllEqual(got[:10], [0.0] * 10)  # growing: no collapse
      self.assertLess(got[40], got[80])  # it follows the fall (one decade of the EMA per
      # 20 steps, at least once the fall is a few steps old): 6 decades below a peak at most
      # 1.9^2 times the first mean square, 4 decades to 1.0.
      self.assertBetween(got[-1], math.log10(1.0e6) / 4.0, math.log10(3.7e6) / 4.0)
    f, state = mlp.collapse_input(tf.zeros([4, 3]), state, 201, collapse_decades=4.0)
    self.assertLess(float(f), 2.0)
    for t in range(202, 600):  # an exactly zero gradient: the average underflows, the input caps
      f, state = mlp.collapse_input(tf.zeros([4, 3]), state, t, collapse_decades=4.0)
    self.assertEqual(float(f), 2.0)
    self.assertTrue(np.all(np.isfinite(state.numpy())))

  def test_padded_meta_params_do_not_change_the_update(self):
    rng = np.random.default_rng(1)
    grad = tf.constant(rng.normal(size=(6, 5)), tf.float32)
    var = tf.constant(rng.normal(size=(6, 5)), tf.float32)
    trained = tf.nest.map_structure(lambda a: rng.normal(size=a.shape).astype(np.float32),
                                    self.plain.init_meta_params(0))
    expected, _ = self.plain.apply(trained, grad, var, self.plain.init_state(var), 3)
    gated = keras_l2o.rules.get("mlp", weight_scale=10.0, collapse_decades=4.0, gated_weight=True)
    weighted_params = self.weighted.meta_params_from(self.plain, trained)
    for rule in (self.both, gated):
      for source, params in ((self.plain, trained), (self.weighted, weighted_params),
                             (self.both, self.both.meta_params_from(self.plain, trained))):
        padded = rule.meta_params_from(source, params)
        self.assertAllEqual(padded["hidden"]["kernel"][3:], np.zeros((rule.num_features - 3, 16)))
        for apply in (rule.apply, rule.fast_apply):
          update, new_state = apply(padded, grad, var, rule.init_state(var), 3)
          self.assertAllClose(expected, update, rtol=1e-5, atol=1e-9)
          self.assertEqual(tuple(new_state.gradient_scale.shape), (1, 2))
    with self.assertRaisesRegex(ValueError, "do not fit rule 'mlp'"):
      self.weighted.meta_params_from(self.both, self.both.init_meta_params(0))
    with self.assertRaisesRegex(ValueError, "do not fit rule 'mlp'"):  # not a trailing input
      gated.meta_params_from(self.collapse, self.collapse.init_meta_params(0))

  def test_a_step_on_the_collapse_input_through_the_keras_optimizer_and_the_export(self):
    """skip on the collapse input only: each step moves every weight by -1e-3 * f_c."""
    params = tf.nest.map_structure(np.zeros_like, self.collapse.init_meta_params(0))
    params["skip"][3, 0] = -1.0
    grads = _falling_gradients(np.random.default_rng(2))
    expected = -1e-3 * np.sum(_reference_collapse(grads, 2.0))
    for jit_rule in (False, True):
      variable = tf.Variable(tf.zeros([4, 3]))
      optimizer = keras_l2o.LearnedOptimizer(self.collapse, params, jit_rule=jit_rule)
      for g in grads:
        optimizer.apply_gradients([(tf.constant(g, tf.float32), variable)])
      self.assertAllClose(np.full([4, 3], expected), variable.numpy(), rtol=1e-4)
    self.assertLess(expected, -1e-3)  # the input was on for several steps
    path = os.path.join(self.get_temp_dir(), "collapse_export")
    keras_l2o.LearnedOptimizer(self.collapse, params, learning_rate=1.0).export(path)
    exported = tf.saved_model.load(path)
    state, var = exported.init_state(tf.constant(12)), tf.zeros([12])
    for i, g in enumerate(grads):
      out = exported.step(tf.constant(g.ravel(), tf.float32), var, state,
                          tf.constant(i, tf.int64))
      var, state = out["var"], out["state"]
    self.assertAllClose(np.full([12], expected), var.numpy(), rtol=1e-4)

  def test_a_gated_decay_from_the_product_input(self):
    """skip on the product input only: each step is -1e-3 * f_c * 10 w (f_c from the gradients)."""
    gated = keras_l2o.rules.get("mlp", weight_scale=10.0, collapse_decades=2.0, gated_weight=True)
    self.assertEqual(gated.num_features, 6)
    params = tf.nest.map_structure(np.zeros_like, gated.init_meta_params(0))
    params["skip"][5, 0] = -1.0
    grads = _falling_gradients(np.random.default_rng(3))
    expected = np.prod([1.0 - 1e-2 * f for f in _reference_collapse(grads, 2.0)])
    self.assertLess(expected, 0.5)  # the decay acted
    for jit_rule in (False, True):
      variable = tf.Variable(tf.ones([4, 3]))
      optimizer = keras_l2o.LearnedOptimizer(gated, params, jit_rule=jit_rule)
      for g in grads:
        optimizer.apply_gradients([(tf.constant(g, tf.float32), variable)])
      self.assertAllClose(np.full([4, 3], expected), variable.numpy(), rtol=1e-4)


if __name__ == "__main__":
  tf.test.main()
