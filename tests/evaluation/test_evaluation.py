"""The evaluation metrics, learning-rate tuning and outputs, with numbers."""

import json
import os

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import evaluation
from keras_l2o import problems
from keras_l2o.problems import base as problems_base


class Parabola(problems_base.ProblemFamily):
  """f(x) = sum(a x^2), x0 ~ N(0, 1), a ~ U[0.5, 1.5): gradient descent's best rate is 1/(2a)."""
  name = "parabola"

  def _sample_tensors(self, split, rng, seed):
    return {"x0": tf.constant(rng.normal(size=4), tf.float32),
            "a": tf.constant(rng.uniform(0.5, 1.5, size=1), tf.float32)}

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    return ()

  def losses(self, tensors, params, batch):
    return tf.reduce_sum(tensors["a"] * tf.square(params[0]))[None]


class MetricsTest(tf.test.TestCase):

  def test_ci95_by_hand(self):
    # mean 3, sample std sqrt(2.5), t(0.975, 4) = 2.7764451: half-width 2.7764451 * 1.5811388 / sqrt(5)
    mean, (lo, hi) = evaluation.mean_ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    self.assertAllClose([mean, lo, hi], [3.0, 3.0 - 1.9632432, 3.0 + 1.9632432], atol=1e-6)

  def test_sum_loss_excludes_the_starting_point(self):
    curves = np.array([[5.0, 4.0, 3.0], [2.0, 1.0, 1.0]])
    self.assertAllEqual(evaluation.sum_loss(curves), [7.0, 2.0])

  def test_speedup_definition(self):
    adam = np.array([10.0, 8.0, 6.0, 4.0, 2.0, 1.0])
    # Adam reaches 4.0 at step 3: with a horizon of 3, the speed-up is 1.
    self.assertEqual(evaluation.speedup(adam, 4.0, 3), 1.0)
    self.assertAlmostEqual(evaluation.speedup(adam, 1.5, 3), 5 / 3)
    self.assertEqual(evaluation.speedup(adam, 9.0, 2), 0.5)
    self.assertIsNone(evaluation.speedup(adam, 0.5, 3))

  def test_summary_counts_diverged_runs_and_keeps_json_finite(self):
    curves = np.array([[1.0, 0.5, 0.25], [1.0, np.inf, np.inf]])
    entry = evaluation.summarize("x", curves, 0.1, 2, adam_long_curve=np.array([1.0, 0.5]))
    self.assertEqual(entry["num_diverged"], 1)
    self.assertIsNone(entry["sum_loss_mean"])
    json.dumps(entry, allow_nan=False)


class TuningTest(tf.test.TestCase):

  def test_tuning_picks_the_best_grid_rate_on_validation_problems_only(self):
    family = Parabola(seed=0)
    runner = evaluation.Runner(family, horizon=5)
    seen = []
    original = runner.curves

    def spy(spec, problem_list, *args, **kwargs):
      seen.extend(p.split for p in problem_list)
      return original(spec, problem_list, *args, **kwargs)

    runner.curves = spy
    validation = [family.sample("validation", i) for i in range(4)]
    best, scores = evaluation.tune_learning_rate(runner, evaluation.baseline("sgd"), validation,
                                                 grid=(0.05, 0.5, 1.2))
    self.assertEqual(set(seen), {"validation"})
    self.assertEqual(best, 0.5)  # 1/(2a) with a near 1: the rate that converges fastest
    self.assertEqual(best, min(scores, key=scores.get))
    with self.assertRaisesRegex(ValueError, r"tuned on validation problems only; received a "
                                r"'test' problem \(index 0\)"):
      evaluation.tune_learning_rate(runner, evaluation.baseline("sgd"),
                                    [family.sample("test", 0)])

  def test_evaluate_tunes_on_validation_and_reports_on_test(self):
    family = Parabola(seed=1)
    sampled = []
    original = family.sample

    def recording_sample(split, index):
      sampled.append(split)
      return original(split, index)

    family.sample = recording_sample
    results = evaluation.evaluate(
        family, [evaluation.baseline("sgd"), evaluation.baseline("adam"),
                 evaluation.baseline("momentum", 0.1)], num_problems=6, horizon=10,
        tuning_problems=3, grid=(0.01, 0.1, 0.4))
    self.assertEqual(sampled.count("test"), 6)
    self.assertEqual(sampled.count("validation"), 3)
    self.assertEqual(results["optimizers"]["momentum"]["learning_rate"], 0.1)
    self.assertIn(results["optimizers"]["sgd"]["learning_rate"], (0.01, 0.1, 0.4))
    # Tuned Adam reaches its own final loss by the horizon at the latest (earlier when its
    # curve is not monotone), so its speed-up over itself is in (0, 1].
    adam = results["optimizers"]["adam"]
    self.assertGreater(adam["speedup_over_adam"], 0.0)
    self.assertLessEqual(adam["speedup_over_adam"], 1.0)
    self.assertEqual(adam["speedup_over_adam"],
                     evaluation.steps_to_reach(adam["curve_mean"], adam["final_loss_mean"]) / 10)
    for entry in results["optimizers"].values():
      self.assertLen(entry["curve_mean"], 11)
      lo, hi = entry["sum_loss_ci95"]
      self.assertLessEqual(lo, entry["sum_loss_mean"])
      self.assertGreaterEqual(hi, entry["sum_loss_mean"])

  def test_schedules_run_through_the_same_unroll(self):
    import keras  # pylint: disable=g-import-not-at-top
    family = Parabola(seed=2)
    runner = evaluation.Runner(family, horizon=6)
    problem_list = [family.sample("test", i) for i in range(3)]
    sgd = evaluation.baseline("sgd")
    fixed = runner.curves(sgd, problem_list, 0.2)
    constant = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=1, decay_rate=1.0)
    self.assertAllClose(fixed, runner.curves(sgd, problem_list, constant), rtol=1e-6)
    decaying = keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=1, decay_rate=0.5)
    slow = runner.curves(sgd, problem_list, decaying)
    self.assertAllClose(fixed[:, :2], slow[:, :2], rtol=1e-6)  # step 0 uses the initial rate
    self.assertTrue(np.all(slow[:, -1] > fixed[:, -1]))  # smaller later steps: less progress

  def test_outputs_follow_the_schema(self):
    family = problems.get("quadratic", seed=0)
    learned = keras_l2o.LearnedOptimizer("lstm")
    results = evaluation.evaluate(family, [evaluation.from_optimizer("lstm-init", learned),
                                           evaluation.baseline("adam")], num_problems=4,
                                  horizon=8, tuning_problems=2, grid=(0.01, 0.1))
    out = self.get_temp_dir()
    paths = evaluation.write_results(results, out)
    with open(paths["json"], encoding="utf-8") as f:
      data = json.load(f)
    self.assertEqual(set(data) - {"tuning"}, {"problem", "num_problems", "horizon", "optimizers"})
    self.assertEqual((data["problem"], data["num_problems"], data["horizon"]), ("quadratic", 4, 8))
    entry = data["optimizers"]["lstm-init"]
    for key in ("learning_rate", "sum_loss_mean", "sum_loss_ci95", "final_loss_mean",
                "final_loss_ci95", "speedup_over_adam", "curve_mean"):
      self.assertIn(key, entry)
    self.assertIsNone(entry["learning_rate"])
    self.assertGreater(os.path.getsize(paths["plot"]), 10000)
    with open(paths["report"], encoding="utf-8") as f:
      self.assertIn("| lstm-init | learned |", f.read())


if __name__ == "__main__":
  tf.test.main()
