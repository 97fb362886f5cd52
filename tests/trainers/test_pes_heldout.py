"""PES with a held-out meta-loss (`meta_loss_data="held_out"`).

The meta-loss of a truncation is then the mean loss, after each update, on
minibatches of examples the problem never trains on; the trajectory itself
(parameters, training losses) is the one the training meta-loss sees.
"""

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from trainers import es_estimators
from trainers import pes


def _digits():
  return problems.get("digits_mlp", batch_size=16)


class HeldoutBatchTest(tf.test.TestCase):

  def test_heldout_examples_lie_outside_the_part_the_problem_trains_on(self):
    family = _digits()
    (train_offset, train_size), (val_offset, val_size) = (family.data_range(s)
                                                          for s in ("train", "validation"))
    for split, (lo, size) in (("train", (val_offset, val_size)),
                              ("validation", (train_offset, train_size)),
                              ("test", (val_offset, val_size))):
      tensors = family.sample(split, 1).tensors
      for step in (0, 7):
        own = family.example_indices(tensors, step).numpy()
        held = family.heldout_indices(tensors, step).numpy()
        self.assertLen(held, 16)
        self.assertTrue(np.all((held >= lo) & (held < lo + size)), (split, held))
        self.assertEmpty(set(own) & set(held))
      x, y = family.heldout_batch(tensors, 7)
      self.assertAllEqual(y, tf.gather(family._y, held))  # pylint: disable=protected-access
      self.assertEqual(x.shape[0], 16)

  def test_families_without_splits_say_so(self):
    family = problems.get("quadratic")
    self.assertFalse(family.has_heldout_data)
    self.assertTrue(_digits().has_heldout_data)
    with self.assertRaisesRegex(NotImplementedError, "Problem family 'quadratic' has no "
                                "held-out examples"):
      family.heldout_batch(family.sample("train", 0).tensors, 0)


def _two_particles():
  """`(family, rule, theta, tensors, particles)`: two digits problems, one particle each."""
  family = _digits()
  rule = keras_l2o.rules.get("mlp", hidden_size=4)
  theta = tf.nest.map_structure(lambda t: tf.stack([t, t]), rule.init_meta_params(0))
  tensors = es_estimators.stack([family.sample("train", i).tensors for i in range(2)])
  return family, rule, theta, tensors, es_estimators.init_particles(rule, family, tensors)


class HeldoutMetaLossTest(tf.test.TestCase):

  def test_values_are_the_mean_heldout_loss_after_each_update(self):
    family, rule, theta, tensors, particles = _two_particles()
    run = lambda start, k, data: es_estimators.run_truncation(  # pylint: disable=unnecessary-lambda-assignment
        rule, family, theta, tensors, start, k, meta_loss_data=data)
    held_values, held_means, held_end = run(particles, 3, "held_out")
    train_values, train_means, train_end = run(particles, 3, "train")
    # The data of the meta-loss changes nothing about the trajectory.
    self.assertAllClose(held_means, train_means, rtol=1e-6)
    self.assertAllClose(held_end.params, train_end.params, rtol=1e-5, atol=1e-6)
    # Reference: step one update at a time; after update t the held-out loss is on batch t.
    expected, state = np.zeros(2), particles
    for t in range(1, 4):
      _, _, state = run(state, 1, "train")
      for p in range(2):
        problem = tf.nest.map_structure(lambda v, p=p: v[p], tensors)
        loss = family.loss(problem, [w[p] for w in state.params],
                           family.heldout_batch(problem, tf.constant(t, tf.int64)))
        expected[p] += float(loss) / 3
    self.assertAllClose(held_values, expected, rtol=1e-5)
    self.assertNotAllClose(held_values, train_values, rtol=1e-3)

  def test_both_is_the_mean_of_the_two_meta_losses(self):
    family, rule, theta, tensors, particles = _two_particles()
    out = {}
    for objective in ("sum", "log_ratio"):
      for data in ("train", "held_out", "both"):
        out[objective, data] = es_estimators.run_truncation(
            rule, family, theta, tensors, particles, 3, objective=objective, meta_loss_data=data)
    train, held, both = (out["sum", d][0] for d in ("train", "held_out", "both"))
    self.assertAllClose(both, (train + held) / 2, rtol=1e-6)
    self.assertAllClose(out["sum", "both"][1], out["sum", "train"][1], rtol=1e-6)
    # log_ratio: both terms against the held-out loss where the trajectory starts.
    train, held, both = (out["log_ratio", d] for d in ("train", "held_out", "both"))
    self.assertAllClose(both[2].init_loss, held[2].init_loss)
    shift = np.log(train[2].init_loss) - np.log(held[2].init_loss)
    self.assertAllClose(both[0], (train[0] + shift + held[0]) / 2, rtol=1e-5, atol=1e-6)
    self.assertGreater(float(np.max(np.abs(shift))), 1e-4)  # the two initial losses differ

  def test_unknown_meta_loss_data_is_named(self):
    family = _digits()
    rule = keras_l2o.rules.get("mlp", hidden_size=4)
    tensors = es_estimators.stack([family.sample("train", 0).tensors])
    with self.assertRaisesRegex(ValueError, r"`meta_loss_data` must be one of \['train', "
                                r"'held_out', 'both'\]. Received: meta_loss_data='test'"):
      es_estimators.run_truncation(
          rule, family, tf.nest.map_structure(lambda t: t[None], rule.init_meta_params(0)),
          tensors, es_estimators.init_particles(rule, family, tensors), 1,
          meta_loss_data="test")


class HeldoutTrainerTest(tf.test.TestCase):

  def _config(self, **overrides):
    values = dict(num_steps=2, unroll_length=3, min_horizon=6, max_horizon=6, num_pairs=2,
                  validation_every=2, validation_problems=2, validation_horizon=4,
                  checkpoint_every=2)
    values.update(overrides)
    return pes.PESConfig(**values)

  def test_refuses_a_family_without_heldout_examples(self):
    with self.assertRaisesRegex(ValueError, r"`meta_loss_data='held_out'` needs problems with "
                                r"held-out examples; these have none: \['quadratic'\]"):
      pes.PESTrainer("learned_lr", problems.get("quadratic"),
                     self._config(meta_loss_data="held_out"), self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, r"`meta_loss_data` must be one of \['train', "
                                r"'held_out', 'both'\]"):
      self._config(meta_loss_data="valid").validate()

  def test_validation_measures_the_heldout_loss(self):
    rule = keras_l2o.rules.get("mlp", hidden_size=4)
    values = {}
    for data in ("train", "held_out"):
      trainer = pes.PESTrainer(rule, _digits(), self._config(meta_loss_data=data),
                               self.get_temp_dir() + "/" + data)
      values[data] = trainer.validate()
      self.assertTrue(np.isfinite(values[data]))
      if data == "held_out":
        summary = trainer.run()
        self.assertEqual(summary["steps"], 2)
        self.assertTrue(np.isfinite(summary["best_validation_loss"]))
    self.assertNotAlmostEqual(values["train"], values["held_out"], places=4)


if __name__ == "__main__":
  tf.test.main()
