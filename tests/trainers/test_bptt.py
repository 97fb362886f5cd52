"""Correctness of the unroll and of truncated-BPTT meta-training."""

import os

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import step as step_lib
from keras_l2o import unroll as unroll_lib
from keras_l2o.problems import base as problems_base
from tests.trainers import kill_resume
from trainers import base as trainers_base
from trainers import bptt



class Simple(problems_base.ProblemFamily):
  """f(x) = x^2 from x = 1: the public code's "simple" test problem."""
  name = "simple"

  def _sample_tensors(self, split, rng, seed):
    return {"x0": tf.ones([1])}

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    return ()

  def losses(self, tensors, params, batch):
    return tf.reduce_sum(tf.square(params[0]))[None]


def _linear_rule():
  return keras_l2o.rules.get("lstm", preprocessing="none", output_scale=1.0, num_layers=0,
                             init="zeros")


def _tiny_lstm():
  return keras_l2o.rules.get("lstm", preprocessing="none", output_scale=0.1, hidden_size=3,
                             num_layers=1, init="random")


def _meta64(rule, seed=0):
  return tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), rule.init_meta_params(seed))


def _truncation_loss(rule, meta, family, tensors, steps, second_derivatives):
  state = unroll_lib.init_state(rule, family, tensors, dtype=tf.float64)
  losses, final, _ = unroll_lib.unroll(rule, meta, family, tensors, state, steps,
                                       second_derivatives=second_derivatives)
  return bptt.meta_loss(losses, final, np.ones(steps))


class MetaGradientTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.family = problems.get("quadratic", seed=0, dims=3)
    self.tensors = self.family.sample("train", 0).tensors
    self.rule = _tiny_lstm()

  def _gradient(self, meta, second_derivatives):
    flat = tf.nest.flatten(meta)
    with tf.GradientTape() as tape:
      tape.watch(flat)
      loss = _truncation_loss(self.rule, meta, self.family, self.tensors, 3, second_derivatives)
    return [g.numpy() for g in tape.gradient(loss, flat)]

  def test_second_order_meta_gradient_equals_central_finite_differences(self):
    meta = _meta64(self.rule)
    analytic = self._gradient(meta, second_derivatives=True)
    flat = [t.numpy() for t in tf.nest.flatten(meta)]
    rng = np.random.default_rng(0)
    h = 1e-6
    checked = 0
    for leaf in range(len(flat)):
      for index in rng.choice(flat[leaf].size, size=min(6, flat[leaf].size), replace=False):
        values = []
        for sign in (1, -1):
          perturbed = [a.copy() for a in flat]
          perturbed[leaf].reshape(-1)[index] += sign * h
          meta_p = tf.nest.pack_sequence_as(meta, [tf.constant(a) for a in perturbed])
          values.append(float(_truncation_loss(self.rule, meta_p, self.family, self.tensors, 3,
                                               True)))
        numeric = (values[0] - values[1]) / (2 * h)
        self.assertAllClose(numeric, analytic[leaf].reshape(-1)[index], rtol=1e-5, atol=1e-8)
        checked += 1
    self.assertGreater(checked, 10)
    # The second-order terms matter here, so the first-order gradient must differ.
    first = self._gradient(meta, second_derivatives=False)
    self.assertGreater(max(np.abs(a - b).max() for a, b in zip(analytic, first)), 1e-6)

  def test_first_order_equals_stop_gradient_on_the_inner_gradient(self):
    meta = _meta64(self.rule)
    got = self._gradient(meta, second_derivatives=False)
    # The same computation written out by hand, with an explicit stop_gradient.
    flat = tf.nest.flatten(meta)
    with tf.GradientTape() as tape:
      tape.watch(flat)
      (x,) = [tf.cast(p, tf.float64) for p in self.family.init_params(self.tensors)]
      state = self.rule.init_state(x)
      losses = []
      for t in range(4):
        with tf.GradientTape() as inner:
          inner.watch(x)
          loss = tf.reduce_mean(self.family.losses(self.tensors, [x], ()))
          total = tf.reduce_sum(self.family.losses(self.tensors, [x], ()))
        losses.append(loss)
        if t == 3:
          break
        grad = tf.stop_gradient(inner.gradient(total, x))
        x, state = step_lib.functional_step(self.rule, meta, grad, x, state, t + 1, 1.0)
      objective = tf.add_n(losses[1:]) / 3.0
    expected = [g.numpy() for g in tape.gradient(objective, flat)]
    for a, b in zip(expected, got):
      self.assertAllClose(a, b, rtol=1e-12, atol=1e-15)

  def test_unroll_continues_across_truncations(self):
    """Two truncations of 5 steps give exactly one unroll of 10 steps."""
    meta = _meta64(self.rule)
    state = unroll_lib.init_state(self.rule, self.family, self.tensors, dtype=tf.float64)
    whole, final, end = unroll_lib.unroll(self.rule, meta, self.family, self.tensors, state, 10)
    first, _, middle = unroll_lib.unroll(self.rule, meta, self.family, self.tensors, state, 5)
    second, final2, end2 = unroll_lib.unroll(self.rule, meta, self.family, self.tensors, middle, 5)
    self.assertAllClose(whole, tf.concat([first, second], 0), rtol=1e-14)
    self.assertAllClose(final, final2, rtol=1e-14)
    self.assertAllClose(end.params[0], end2.params[0], rtol=1e-14)
    self.assertEqual(int(end2.step), 10)


class GoldenValuesTest(tf.test.TestCase):
  """The public code's golden values on f(x) = x^2 (L2L.md)."""

  def _train(self, unroll_length, epochs, unrolls, learning_rate):
    rule, family = _linear_rule(), Simple()
    meta = tf.nest.map_structure(tf.Variable, rule.init_meta_params(0))
    flat = tf.nest.flatten(meta)
    optimizer = keras.optimizers.Adam(learning_rate, epsilon=1e-8)
    tensors = family.sample("train", 0).tensors

    @tf.function
    def meta_step(state):
      with tf.GradientTape() as tape:
        losses, final, new_state = unroll_lib.unroll(rule, meta, family, tensors, state,
                                                     unroll_length)
        objective = tf.reduce_sum(losses)  # the public code's sum of f before each update
      optimizer.apply(tape.gradient(objective, flat), flat)
      return final, new_state

    for _ in range(epochs):
      state = unroll_lib.init_state(rule, family, tensors)
      for _ in range(unrolls):
        cost, state = meta_step(state)
    return float(cost), float(state.params[0][0])

  def test_one_epoch_of_two_unrolls_of_five(self):
    cost, x = self._train(5, 1, 2, 0.01)
    self.assertAlmostEqual(cost, 0.7325327, places=4)
    self.assertAlmostEqual(x, 0.8559, places=4)

  def test_converges_below_1e_5(self):
    cost, _ = self._train(20, 500, 5, 0.01)
    self.assertLess(cost, 1e-5)


class TrainerTest(tf.test.TestCase):

  def _config(self, **kw):
    defaults = dict(num_steps=12, unroll_length=5, horizon=10, validation_every=4,
                    validation_problems=2, checkpoint_every=4, log_every=2)
    defaults.update(kw)
    return bptt.BPTTConfig(**defaults)

  def _trainer(self, save_dir, **kw):
    return bptt.BPTTTrainer(keras_l2o.rules.get("lstm", hidden_size=4, num_layers=1),
                            problems.get("quadratic", seed=1, num_quadratics=16),
                            self._config(**kw), save_dir)

  def test_run_writes_metrics_checkpoints_and_loadable_optimizers(self):
    save_dir = os.path.join(self.get_temp_dir(), "run")
    result = self._trainer(save_dir).run()
    self.assertEqual(result["steps"], 12)
    records = trainers_base.MetricsLog(save_dir).read()
    self.assertEqual([r["step"] for r in records], [0, 2, 4, 6, 8, 10, 12])
    validations = [r["step"] for r in records if "validation_loss" in r]
    self.assertEqual(validations, [0, 4, 8, 12])
    self.assertTrue(all(np.isfinite(r["meta_loss"]) for r in records if "meta_loss" in r))
    config = trainers_base.read_config(save_dir)
    self.assertEqual((config["trainer"], config["bptt"]["unroll_length"]), ("bptt", 5))
    final, best = keras_l2o.load(save_dir), keras_l2o.load(save_dir, which="best")
    self.assertEqual(final.rule.get_config()["hidden_size"], 4)
    self.assertAlmostEqual(result["best_validation_loss"],
                           min(r["validation_loss"] for r in records if "validation_loss" in r))
    del best
    with self.assertRaisesRegex(ValueError, "has no 'last' optimizer: only GPS runs write one"):
      keras_l2o.load(save_dir, which="last")
    self.assertTrue(tf.train.latest_checkpoint(os.path.join(save_dir, "checkpoints")))

  def test_validation_runs_the_problems_together_with_each_ones_own_value(self):
    # All validation problems go through one traced call; each gives exactly what its own
    # unroll gives, with fresh state, over the whole horizon.
    trainer = self._trainer(os.path.join(self.get_temp_dir(), "v"), validation_problems=3)
    family = trainer.family
    alone = []
    for index in range(3):
      tensors = family.sample("validation", index).tensors
      state = unroll_lib.init_state(trainer.rule, family, tensors)
      losses, final_loss, _ = unroll_lib.unroll(trainer.rule, trainer.meta_vars, family, tensors,
                                                state, trainer.config.horizon)
      alone.append(float(tf.reduce_mean(unroll_lib.losses_after_updates(losses, final_loss))))
    self.assertEqual(len(set(alone)), 3)  # three different problems
    self.assertAllClose(trainer.validate(), np.mean(alone), rtol=1e-6, atol=0)

  def test_meta_training_lowers_validation_loss(self):
    save_dir = os.path.join(self.get_temp_dir(), "learn")
    result = bptt.BPTTTrainer(
        keras_l2o.rules.get("lstm", hidden_size=8, num_layers=1),
        problems.get("quadratic", seed=2, num_quadratics=32),
        self._config(num_steps=60, unroll_length=10, horizon=20, validation_every=60,
                     meta_learning_rate=3e-3), save_dir).run()
    self.assertLess(result["last_validation_loss"], 0.8 * result["first_validation_loss"])

  def test_nonfinite_meta_gradients_are_skipped_and_counted(self):
    save_dir = os.path.join(self.get_temp_dir(), "nan")
    trainer = self._trainer(save_dir, num_steps=3)
    before = [v.numpy() for v in tf.nest.flatten(trainer.meta_vars)]
    original = trainer._meta_step_fns[0]  # pylint: disable=protected-access

    def poisoned(tensors, state):
      objective, grads, norm, mean_loss, new_state = original(tensors, state)
      return objective, [g * np.nan for g in grads], norm * np.nan, mean_loss, new_state

    trainer._meta_step_fns[0] = poisoned  # pylint: disable=protected-access
    result = trainer.run()
    self.assertEqual(result["nonfinite_skips"], 3)
    for a, b in zip(before, tf.nest.flatten(trainer.meta_vars)):
      self.assertAllEqual(a, b.numpy())

  def test_resume_in_process_matches_uninterrupted(self):
    straight = os.path.join(self.get_temp_dir(), "straight")
    self._trainer(straight).run()
    split = os.path.join(self.get_temp_dir(), "split")
    self._trainer(split, num_steps=6).run()
    self._trainer(split).run()  # same directory, more steps: resumes at 6
    for a, b in zip(tf.nest.flatten(keras_l2o.load(straight).meta_params),
                    tf.nest.flatten(keras_l2o.load(split).meta_params)):
      self.assertAllEqual(a.numpy(), b.numpy())
    steps = [r["step"] for r in trainers_base.MetricsLog(split).read()]
    self.assertEqual(steps, sorted(set(steps)))

  def test_mixture_of_families_with_different_shapes_trains_and_resumes(self):
    def mixture():
      return problems.MixtureFamily([problems.get("quadratic", seed=1, dims=3, num_quadratics=4),
                                     problems.get("quadratic", seed=2, dims=7, num_quadratics=2)])

    def trainer(save_dir, steps):
      return bptt.BPTTTrainer(keras_l2o.rules.get("mlp", hidden_size=4), mixture(),
                              self._config(num_steps=steps, meta_objective="log_ratio"), save_dir)

    straight = os.path.join(self.get_temp_dir(), "mix_straight")
    result = trainer(straight, 12).run()
    self.assertEqual(result["steps"], 12)
    self.assertEqual(result["diverged_trajectories"], 0)
    split = os.path.join(self.get_temp_dir(), "mix_split")
    trainer(split, 7).run()  # stops mid-trajectory, on the second component
    trainer(split, 12).run()
    for a, b in zip(tf.nest.flatten(keras_l2o.load(straight).meta_params),
                    tf.nest.flatten(keras_l2o.load(split).meta_params)):
      self.assertAllEqual(a.numpy(), b.numpy())
    # The initial mlp rule is Adam: meta-training moved it.
    initial = keras_l2o.rules.get("mlp", hidden_size=4).init_meta_params(0)
    moved = [np.abs(a.numpy() - b.numpy()).max() for a, b in zip(
        tf.nest.flatten(keras_l2o.load(straight).meta_params), tf.nest.flatten(initial))]
    self.assertGreater(max(moved), 1e-4)

  def test_config_is_validated(self):
    for value in (0, True, 2.0):  # a bool or a float is not a count
      with self.assertRaisesRegex(ValueError, r"^`problems_per_replica` must be a positive "
                                  rf"integer\. Received: problems_per_replica={value!r}$"):
        bptt.BPTTConfig(problems_per_replica=value).validate()
    with self.assertRaisesRegex(ValueError, r"`horizon` must be a multiple of `unroll_length`\. "
                                r"Received: horizon=15, unroll_length=10"):
      bptt.BPTTConfig(horizon=15, unroll_length=10).validate()
    with self.assertRaisesRegex(ValueError, r"`meta_objective` must be one of \['sum', "
                                r"'log_ratio'\]\. Received: meta_objective='mean'"):
      bptt.BPTTConfig(meta_objective="mean").validate()

  def test_meta_loss_forms(self):
    losses, final = tf.constant([4.0, 2.0, 1.0]), tf.constant(0.5)
    self.assertAllClose(bptt.meta_loss(losses, final, np.ones(3)), (2 + 1 + 0.5) / 3)
    self.assertAllClose(bptt.meta_loss(losses, final, np.ones(3), "log_ratio"),
                        np.mean(np.log([2 / 4, 1 / 4, 0.5 / 4])), rtol=1e-6)
    self.assertAllClose(bptt.meta_loss(losses, final, bptt.time_weights("final", 3)), 0.5)


class KillAndResumeTest(kill_resume.KillAndResumeMixin, tf.test.TestCase):
  """A run killed with SIGKILL after its first checkpoint resumes to the same result."""

  FLAGS = ["--rule=lstm", '--rule_config={"hidden_size": 4, "num_layers": 1}',
           "--problem=quadratic", '--problem_config={"num_quadratics": 8}', "--unroll_length=5",
           "--horizon=10", "--checkpoint_every=5", "--validation_every=100",
           "--validation_problems=2", "--seed=3"]
  NUM_STEPS = 150
  KILL_AFTER = 5

  def test_sigkill_then_resume_equals_uninterrupted(self):
    straight, killed, uninterrupted = self.kill_and_resume()
    # The quadratic problem's thread pools (one thread per op), kept by the resumed run.
    for run_dir in (straight, killed):
      settings = trainers_base.read_config(run_dir)["settings"]
      self.assertEqual((settings["intra_op_threads"], settings["inter_op_threads"]), (1, 0))
    for a, b in zip(tf.nest.flatten(keras_l2o.load(straight).meta_params),
                    tf.nest.flatten(keras_l2o.load(killed).meta_params)):
      self.assertAllEqual(a.numpy(), b.numpy())
    self.assertGreater(uninterrupted["steps"], 0)


if __name__ == "__main__":
  tf.test.main()
