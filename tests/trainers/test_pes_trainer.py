"""The PES / ES trainer: configuration, trajectory lengths, restarts, learning, resume."""

import os

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from trainers import base as trainers_base
from trainers import pes


def _config(**overrides):
  values = dict(num_steps=6, unroll_length=5, min_horizon=10, max_horizon=20, num_pairs=2,
                validation_every=3, validation_problems=2, checkpoint_every=2,
                meta_learning_rate=1e-2)
  values.update(overrides)
  return pes.PESConfig(**values)


def _trainer(save_dir, rule="mlp", **overrides):
  rule = keras_l2o.rules.get(rule, hidden_size=4) if rule == "mlp" else rule
  return pes.PESTrainer(rule, problems.get("quadratic", seed=3, num_quadratics=8),
                        _config(**overrides), save_dir)


class ConfigTest(tf.test.TestCase):

  def test_bad_fields_are_named(self):
    cases = [({"estimator": "nes"}, r"`estimator` must be one of \['pes', 'es'\]. Received: "
              r"estimator='nes'"),
             ({"meta_objective": "mean"}, r"`meta_objective` must be one of \['sum', "
              r"'log_ratio'\]"),
             ({"num_pairs": 0}, r"`num_pairs` must be a positive integer. Received: num_pairs=0"),
             ({"sigma": -1.0}, r"`sigma` must be a positive number. Received: sigma=-1.0"),
             ({"min_horizon": 50, "max_horizon": 20}, r"`min_horizon` must be at most "
              r"`max_horizon`. Received: min_horizon=50, max_horizon=20")]
    for overrides, message in cases:
      with self.assertRaisesRegex(ValueError, message):
        _config(**overrides).validate()

  def test_hand_designed_rule_and_uneven_mixture_are_refused(self):
    with self.assertRaisesRegex(ValueError, "Rule 'sgd' has no meta-parameters to train"):
      pes.PESTrainer("sgd", problems.get("quadratic"), _config(), self.get_temp_dir())
    mixture = problems.MixtureFamily([problems.get("quadratic"), problems.get("digits_mlp")])
    with self.assertRaisesRegex(ValueError, r"A mixture of 2 problem families needs `num_pairs` "
                                r"a multiple of 2 and one replica. Received: num_pairs=3"):
      pes.PESTrainer("learned_lr", mixture, _config(num_pairs=3), self.get_temp_dir())


class TrajectoryLengthTest(tf.test.TestCase):

  def test_lengths_are_log_uniform_whole_truncations_and_first_ones_staggered(self):
    config = _config(unroll_length=20, min_horizon=100, max_horizon=2000, seed=1)
    lengths = np.array([pes.trajectory_length(config, i, first=False) for i in range(2000)])
    self.assertAllEqual(lengths % 20, np.zeros_like(lengths))
    self.assertGreaterEqual(lengths.min(), 100)
    self.assertLessEqual(lengths.max(), 2000)
    # log-uniform: the median near sqrt(100 * 2000) = 447, not the uniform's 1050.
    self.assertBetween(float(np.median(lengths)), 400, 500)
    firsts = np.array([pes.trajectory_length(config, i, first=True) for i in range(2000)])
    self.assertLess(float(np.mean(firsts)), 0.6 * float(np.mean(lengths)))
    self.assertGreater(len(set(firsts.tolist())), 50)  # pairs restart at many different times


class TrainerTest(tf.test.TestCase):

  def test_pairs_restart_at_their_lengths_with_zero_accumulators(self):
    trainer = _trainer(self.get_temp_dir(), num_steps=1)
    for i in range(2):
      trainer._start(0, i, first=True)  # pylint: disable=protected-access
    lengths = trainer.banks[0]["length"].numpy().copy()
    restarts = 0
    for _ in range(int(lengths.max()) // 5 + 1):
      trainer._train_step()  # pylint: disable=protected-access
      steps = trainer.banks[0]["step"].numpy()
      for i in range(2):
        if steps[i] == 0:  # restarted: xi and both particles' states are fresh
          restarts += 1
          for xi in tf.nest.flatten(trainer.banks[0]["xi"]):
            self.assertAllEqual(xi[i], tf.zeros_like(xi[i]))
          for p in trainer.banks[0]["params"]:
            self.assertAllEqual(p[0, i], p[1, i])
    self.assertGreaterEqual(restarts, 2)
    self.assertEqual(trainer.next_trajectory.numpy().tolist(), [2 + restarts])

  def test_pes_learns_the_step_size_of_sgd_on_quadratics(self):
    trainer = pes.PESTrainer(
        keras_l2o.rules.get("learned_lr", initial_learning_rate=1e-3),
        problems.get("quadratic", seed=3, num_quadratics=8),
        _config(num_steps=30, num_pairs=8, meta_learning_rate=0.1, validation_every=30,
                unroll_length=10, min_horizon=50, max_horizon=100, sigma=0.1),
        self.get_temp_dir())
    result = trainer.run()
    self.assertLess(result["last_validation_loss"], 0.9 * result["first_validation_loss"])
    self.assertGreater(float(trainer.meta_vars["log_learning_rate"]), np.log(1e-3) + 1.0)

  def test_mixture_pairs_keep_their_component_and_resume_bit_for_bit(self):
    mixture = problems.MixtureFamily([problems.get("quadratic", seed=3, num_quadratics=8),
                                      problems.get("digits_mlp", seed=1)])

    def trainer(save_dir, **overrides):
      return pes.PESTrainer(keras_l2o.rules.get("mlp", hidden_size=4), mixture,
                            _config(num_pairs=4, validation_problems=3, **overrides), save_dir)

    straight = trainer(os.path.join(self.get_temp_dir(), "straight"))
    result = straight.run()
    self.assertTrue(np.isfinite(result["last_validation_loss"]))
    # 30 inner steps per pair against trajectories of at most 20: both pairs of each bank
    # restarted at least once, taking that component's next problems (local 2, 3, ...).
    self.assertAllGreaterEqual(straight.next_trajectory.numpy(), 4)
    for b, bank in enumerate(straight.banks):
      indices = bank["trajectory"].numpy()
      self.assertAllEqual(indices % 2, [b, b])  # mixture problem j * K + b is component b's
      self.assertAllGreaterEqual(indices // 2, 2)  # restarted: past the initial problems 0, 1
      self.assertAllLess(indices // 2, int(straight.next_trajectory[b]))
      for i, index in enumerate(indices):  # the pair holds exactly that problem's tensors
        expected = tf.nest.flatten(mixture.sample("train", int(index)).tensors)
        for var, value in zip(tf.nest.flatten(bank["tensors"]), expected):
          self.assertAllEqual(var[i], value)
    split = os.path.join(self.get_temp_dir(), "split")
    trainer(split, num_steps=3).run()
    self.assertEqual(trainer(split).run(), result)

  def test_resume_in_process_matches_uninterrupted(self):
    straight = _trainer(os.path.join(self.get_temp_dir(), "straight")).run()
    split = os.path.join(self.get_temp_dir(), "split")
    _trainer(split, num_steps=3).run()
    resumed = _trainer(split).run()  # the same directory, more steps: resumes at 3
    self.assertEqual(resumed["meta_params_sha256"], straight["meta_params_sha256"])
    self.assertEqual(resumed, straight)

  def test_es_trainer_runs_and_records_its_estimator(self):
    save_dir = self.get_temp_dir()
    trainer = _trainer(save_dir, estimator="es", num_steps=3, validation_every=3)
    result = trainer.run()
    self.assertEqual(result["steps"], 3)
    config = trainers_base.read_config(save_dir)
    self.assertEqual((config["trainer"], config["pes"]["estimator"]), ("es", "es"))
    records = [r for r in trainers_base.MetricsLog(save_dir).read() if "meta_loss" in r]
    self.assertTrue(all(r["particle_steps_per_second"] > 0 for r in records))
    for a, b in zip(tf.nest.flatten(keras_l2o.load(save_dir).meta_params), trainer._flat_meta):  # pylint: disable=protected-access
      self.assertAllEqual(a.numpy(), b.numpy())


if __name__ == "__main__":
  tf.test.main()
