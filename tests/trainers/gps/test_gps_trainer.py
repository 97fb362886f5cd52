"""The GPS meta-trainer (GPS.md 3, 5.10): rollouts, cost, a tiny run, exact resume, CLI."""

import os

import doctest
import json
import subprocess
import sys

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from tests import testing_utils
from trainers import base
from trainers.gps import rollouts
from trainers.gps import trainer as gps_trainer

_REPO = testing_utils.REPO_ROOT
HISTORY = 3
HORIZON = 6


def _tiny_config(**overrides):
  values = dict(iterations=2, num_conditions=2, samples_per_condition=5, horizon=HORIZON,
                policy_steps=20, validation_problems=2, momentum_rates=(0.1, 0.4),
                momentum_values=(0.82, 0.9))
  values.update(overrides)
  return gps_trainer.GPSConfig(**values)


def _rule(history=HISTORY):
  return keras_l2o.rules.get("gps_policy", dimension=4, history=history)


def _family(horizon=HORIZON):
  return problems.get("logistic_regression", seed=0, horizon=horizon)


def _random_policy_params(rule, seed):
  """Meta-parameters whose mean reads every observation feature (not just the gradient)."""
  params = rule.init_meta_params(seed)
  rng = np.random.default_rng(seed)
  params["output"]["kernel"] = tf.constant(
      params["output"]["kernel"].numpy() + 0.02 * rng.normal(size=params["output"]["kernel"].shape),
      tf.float32)
  return tf.nest.map_structure(lambda t: tf.cast(t, tf.float64), params)


class RolloutTest(tf.test.TestCase):

  def test_rollout_of_the_policy_mean_equals_the_rule_unroll(self):
    # The GPS state must carry exactly the observation the rule builds, or the
    # policy trained on the samples would see other inputs as an optimizer.
    rule, family = _rule(), _family()
    params = _random_policy_params(rule, 3)
    tensors = family.sample("train", 1).tensors
    layout = slice(4, None)
    out = rollouts.rollout(family, tensors, tf.zeros([2, 8, 4], tf.float64),
                           lambda t, s: rule.mean(params, s[:, layout]), HISTORY)
    state = unroll_lib.init_state(rule, family, tensors, dtype=tf.float64)
    losses, final, _ = unroll_lib.unroll(rule, params, family, tensors, state, 8)
    expected = np.append(losses.numpy(), float(final))
    self.assertAllClose(out.losses[0], expected, rtol=1e-12, atol=0)
    self.assertAllClose(out.losses[1], expected, rtol=1e-12, atol=0)
    self.assertLess(expected[-1], expected[0])  # it optimises at all

  def test_states_hold_location_and_histories(self):
    family = _family()
    tensors = family.sample("train", 0).tensors
    noise = tf.random.stateless_normal([1, 4, 4], seed=[1, 2], dtype=tf.float64) * 0.1
    out = rollouts.rollout(family, tensors, noise, lambda t, s: tf.zeros([1, 4], tf.float64), 2)
    states, actions = out.states.numpy()[0], out.actions.numpy()[0]
    x0 = tensors["x0"].numpy().astype(np.float64)
    self.assertAllClose(states[3, :4], x0 + actions[:3].sum(0), atol=1e-12)
    # [x (4); r (2); g_{t-2}, g_{t-1} (8); g_t (4); dx_{t-2}, dx_{t-1} (8)] at t = 3
    self.assertAllClose(states[3, 6:14], out.grads.numpy()[0, 1:3].reshape(-1), atol=0)
    self.assertAllClose(states[3, 14:18], out.grads.numpy()[0, 3], atol=0)
    self.assertAllClose(states[3, 18:26], actions[1:3].reshape(-1), atol=0)
    losses = out.losses.numpy()[0]
    self.assertAllClose(states[3, 4:6], [(losses[2] - losses[1]) / losses[1],
                                         (losses[3] - losses[2]) / losses[2]], rtol=1e-12)
    self.assertAllClose(states[0, 4:14], np.zeros(10), atol=0)  # t = 0: zero padding
    self.assertAllClose(states[0, 14:18], out.grads.numpy()[0, 0], atol=0)
    self.assertAllClose(states[0, 18:], np.zeros(8), atol=0)

  def test_expanded_cost_is_the_second_order_taylor_expansion(self):
    family = _family()
    tensors = family.sample("train", 0).tensors
    noise = tf.random.stateless_normal([1, 3, 4], seed=[4, 2], dtype=tf.float64)
    out = rollouts.rollout(family, tensors, noise, lambda t, s: tf.zeros([1, 4], tf.float64), 2)
    cost = rollouts.expand_cost(out, 4, 4)
    objective = rollouts.objective_fn(family, tensors)
    t = 1
    y = np.concatenate([out.states.numpy()[0, t], out.actions.numpy()[0, t]])
    cm, cv, cc = cost.Cm.numpy()[t], cost.cv.numpy()[t], float(cost.cc[t])
    quad = lambda z: 0.5 * z @ cm @ z + cv @ z + cc  # noqa: E731
    self.assertAllClose(quad(y), float(objective(tf.constant(y[:4]))), rtol=1e-12)
    delta = np.zeros_like(y)
    delta[:4] = 1e-3 * np.array([1.0, -2.0, 0.5, 1.0])
    delta[-4:] = 5.0  # the cost ignores the action and the history
    delta[10] = 3.0
    exact = float(objective(tf.constant(y[:4] + delta[:4])))
    self.assertLess(abs(quad(y + delta) - exact), 1e-8)  # third-order error only
    linear = quad(y) + (cm @ y + cv) @ delta  # without the Hessian term: visibly worse
    self.assertGreater(abs(linear - exact), 1e-7)


  def test_docstring_example(self):
    failed, attempted = doctest.testmod(rollouts)
    self.assertGreater(attempted, 0)
    self.assertEqual(failed, 0)


class ConfigTest(tf.test.TestCase):

  def test_bad_fields_are_named(self):
    with self.assertRaisesRegex(ValueError, r"nu_mode.*\['lm', 'default'\].*'bad'"):
      _tiny_config(nu_mode="bad").validate()
    with self.assertRaisesRegex(ValueError, "horizon.*at least 2.*horizon=1"):
      _tiny_config(horizon=1).validate()
    with self.assertRaisesRegex(ValueError, "kl_step.*positive.*-1"):
      _tiny_config(kl_step=-1.0).validate()

  def test_wrong_rule_or_family_is_refused(self):
    with self.assertRaisesRegex(ValueError, "gps_policy.*'lstm'"):
      gps_trainer.GPSTrainer("lstm", _family(), _tiny_config(), self.get_temp_dir())
    with self.assertRaisesRegex(ValueError, r"12 entries.*\[\(4,\)\]"):
      gps_trainer.GPSTrainer(keras_l2o.rules.get("gps_policy", dimension=12, history=2),
                             _family(), _tiny_config(), self.get_temp_dir())


class TrainerTest(tf.test.TestCase):

  def _run(self, save_dir, **overrides):
    trainer = gps_trainer.GPSTrainer(_rule(), _family(), _tiny_config(**overrides), save_dir)
    return trainer, trainer.run()

  def test_normalizer_freeze_keeps_the_policy_function(self):
    trainer = gps_trainer.GPSTrainer(_rule(), _family(), _tiny_config(), self.get_temp_dir())
    rng = np.random.default_rng(0)
    size = trainer.rule.observation_size
    obs = rng.normal(size=(50, size)) * rng.uniform(0.01, 3.0, size=size) + rng.normal(size=size)
    before = trainer._policy_mean(tf.constant(obs)).numpy()
    trainer._freeze_normalizer(tf.constant(obs))
    after = trainer._policy_mean(tf.constant(obs)).numpy()
    self.assertAllClose(after, before, atol=1e-5)
    normalised = (obs - trainer.meta_vars["normalizer"]["mean"].numpy()) / trainer.meta_vars[
        "normalizer"]["std"].numpy()
    self.assertAllClose(normalised.mean(0), np.zeros(size), atol=1e-5)
    self.assertAllClose(normalised.std(0), np.ones(size), atol=1e-4)

  def test_killed_run_resumes_exactly_and_exports(self):
    full_dir = os.path.join(self.get_temp_dir(), "full")
    trainer, full = self._run(full_dir)
    self.assertEqual(full["iterations"], 2)
    records = base.MetricsLog(full_dir).read()
    self.assertEqual([r["step"] for r in records], [0, 1, 2])
    for record in records[1:]:
      self.assertTrue(np.isfinite(record["meta_loss"]) and np.isfinite(record["validation_loss"]))
      self.assertGreater(record["meta_loss"], 0.0)
    self.assertAllClose(trainer.step_mult.numpy() > 0, [True, True])
    # restore_best (the default): final/ is the best validated policy, last/ the last one.
    loaded = keras_l2o.load(full_dir)
    self.assertEqual(base.digest(loaded.meta_params), full["meta_params_sha256"])
    best = keras_l2o.load(full_dir, which="best")
    self.assertEqual(base.digest(best.meta_params), base.digest(trainer.best_vars))
    self.assertEqual(full["meta_params_sha256"], base.digest(trainer.best_vars))
    last = keras_l2o.load(full_dir, which="last")
    self.assertEqual(base.digest(last.meta_params), base.digest(trainer.meta_vars))
    self.assertEqual(full["last_meta_params_sha256"], base.digest(trainer.meta_vars))
    self.assertNotEqual(full["last_meta_params_sha256"], full["meta_params_sha256"])
    self.assertAllClose(min(r["validation_loss"] for r in records), full["best_validation_loss"])
    # "Killed" after one iteration, resumed by a new trainer up to two.
    split_dir = os.path.join(self.get_temp_dir(), "split")
    self._run(split_dir, iterations=1)
    # (resumed with restore_best off: final/ is then the last iteration's policy)
    resumed_trainer, resumed = self._run(split_dir, restore_best=False)
    self.assertEqual(resumed["meta_params_sha256"], full["last_meta_params_sha256"])
    self.assertEqual(base.digest(keras_l2o.load(split_dir).meta_params),
                     full["last_meta_params_sha256"])
    self.assertAllEqual(resumed_trainer.psi_K.numpy(), trainer.psi_K.numpy())
    self.assertAllEqual(resumed_trainer.nu.numpy(), trainer.nu.numpy())
    self.assertEqual(base.MetricsLog(split_dir).read(), records)

  def test_trained_policy_beats_the_initial_policy_on_held_out_problems(self):
    # GPS.md 5.10 in small form: 4 training problems, T = 10, 3 iterations.
    save_dir = self.get_temp_dir()
    _, result = self._run(save_dir, iterations=3, num_conditions=4, samples_per_condition=8,
                          horizon=10, policy_steps=100, validation_problems=8,
                          momentum_rates=(0.1, 0.4, 1.6), momentum_values=(0.82, 0.9))
    records = base.MetricsLog(save_dir).read()
    initial = records[0]["validation_loss"]
    self.assertLess(result["best_validation_loss"], 0.9 * initial)


class CommandLineTest(tf.test.TestCase):

  def test_meta_train_gps_and_resume(self):
    save_dir = os.path.join(self.get_temp_dir(), "run")
    args = ["--trainer=gps", "--rule=gps_policy", "--problem=logistic_regression",
            '--problem_config={"horizon": 5}',
            '--rule_config={"history": 2}', "--num_steps=1", "--validation_problems=2",
            '--gps_config={"num_conditions": 2, "samples_per_condition": 4, "policy_steps": 5, '
            '"momentum_rates": [0.1], "momentum_values": [0.9]}', f"--save_dir={save_dir}"]
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "scripts.meta_train", *args, *extra], cwd=_REPO,
        capture_output=True, text=True, timeout=600, check=False)
    first = run()
    self.assertEqual(first.returncode, 0, msg=first.stderr[-3000:])
    self.assertEqual(json.loads(first.stdout.strip().splitlines()[-1])["iterations"], 1)
    config = base.read_config(save_dir)
    self.assertEqual(config["trainer"], "gps")
    self.assertEqual(config["rule"]["config"]["dimension"], 4)
    # (Refusing an existing run without --resume is shared with bptt: tests/scripts/test_cli.py.)
    second = subprocess.run([sys.executable, "-m", "scripts.meta_train", f"--save_dir={save_dir}",
                             "--resume", "--num_steps=2"], cwd=_REPO, capture_output=True,
                            text=True, timeout=600, check=False)
    self.assertEqual(second.returncode, 0, msg=second.stderr[-3000:])
    self.assertEqual(json.loads(second.stdout.strip().splitlines()[-1])["iterations"], 2)
    self.assertEqual([r["step"] for r in base.MetricsLog(save_dir).read()], [0, 1, 2])

  def test_gps_defaults_to_gps_lstm_with_twenty_training_problems(self):
    # GroupGPSConfig's own default (2 conditions, sized for MNIST nets) failed on logistic
    # regression for 5 of 8 seeds; meta_train gives these problems 20 unless told otherwise.
    save_dir = os.path.join(self.get_temp_dir(), "groups")
    result = subprocess.run(
        [sys.executable, "-m", "scripts.meta_train", "--trainer=gps",
         "--problem=logistic_regression", '--problem_config={"horizon": 4}', "--num_steps=1",
         "--validation_problems=2",
         '--gps_config={"samples_per_condition": 2, "policy_steps": 2, "momentum_rates": [0.1], '
         '"momentum_values": [0.9]}', f"--save_dir={save_dir}"],
        cwd=_REPO, capture_output=True, text=True, timeout=600, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    config = base.read_config(save_dir)
    self.assertEqual(config["rule"]["name"], "gps_lstm")  # the default rule with --trainer=gps
    self.assertEqual(config["gps"]["restore_best"], True)
    self.assertEqual(config["gps"]["num_conditions"], 20)
    self.assertEqual(config["gps"]["samples_per_condition"], 2)  # the flag's values still apply


if __name__ == "__main__":
  tf.test.main()
