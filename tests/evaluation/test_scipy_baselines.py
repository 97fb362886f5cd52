"""Conjugate gradient and L-BFGS baselines (scipy) in the evaluation and its command line."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from absl.testing import parameterized
from scipy import optimize

from keras_l2o import evaluation
from keras_l2o import problems
from keras_l2o.problems import base as problems_base
from tests import testing_utils

_REPO = testing_utils.REPO_ROOT
_LOGISTIC = problems.get("logistic_regression", seed=1)
_QUADRATIC = problems.get("quadratic", seed=1)


class Noisy(problems_base.ProblemFamily):
  """A parabola whose batch changes every step: no full-batch objective."""
  name = "noisy"

  def _sample_tensors(self, split, rng, seed):
    return {"x0": tf.constant(rng.normal(size=3), tf.float32)}

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    return tf.random.stateless_normal([3], tf.stack([tf.cast(step, tf.int64), 0]))

  def losses(self, tensors, params, batch):
    return tf.reduce_sum(tf.square(params[0] - batch))[None]


def _objective(family, tensors):
  """f and its gradient in float64 numpy over the flat parameters (a one-tensor family)."""
  shape = family.init_params(tensors)[0].shape

  def fun(x):
    x = tf.constant(x.reshape(shape), tf.float64)
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = family.loss(tensors, [x], family.batch(tensors, 0))
    return float(loss), tape.gradient(loss, x).numpy().ravel()

  return fun


def _optimum(family, tensors):
  x0 = family.init_params(tensors)[0].numpy().ravel().astype(np.float64)
  result = optimize.minimize(_objective(family, tensors), x0, jac=True, method="L-BFGS-B",
                             options={"maxiter": 5000, "ftol": 0.0, "gtol": 1e-12})
  return result.fun, np.abs(result.jac).max()


class ScipyCurvesTest(tf.test.TestCase, parameterized.TestCase):

  # scipy's nonlinear CG (Polak-Ribiere, inexact Wolfe line searches) loses conjugacy on this
  # quadratic (cond(W^T W) = 2.9e4): it needs about 350 iterations where L-BFGS needs 50.
  @parameterized.parameters(("cg", "logistic_regression", 60), ("lbfgs", "logistic_regression", 60),
                            ("lbfgs", "quadratic", 60), ("cg", "quadratic", 400))
  def test_curve_is_non_increasing_and_reaches_the_optimum(self, name, family, horizon):
    family = _LOGISTIC if family == "logistic_regression" else _QUADRATIC
    problem = family.sample("test", 0)
    curve = evaluation.Runner(family, horizon).curves(evaluation.scipy_baseline(name),
                                                      [problem])[0]
    self.assertLen(curve, horizon + 1)
    initial = _objective(family, problem.tensors)(
        family.init_params(problem.tensors)[0].numpy().ravel().astype(np.float64))[0]
    self.assertAllClose(curve[0], initial, rtol=1e-12)
    self.assertTrue(np.all(np.diff(curve) <= 1e-12 * abs(curve[0])), msg=str(np.diff(curve)))
    best, gradient = _optimum(family, problem.tensors)
    self.assertLess(gradient, 1e-6)
    self.assertAllClose(curve[-1], best, rtol=1e-7, atol=1e-9)
    self.assertLess(curve[1], curve[0])  # the first iteration already descends

  def test_early_stop_holds_the_last_value(self):
    problem = _LOGISTIC.sample("validation", 2)
    curve = evaluation.Runner(_LOGISTIC, 200).curves(evaluation.scipy_baseline("lbfgs"),
                                                     [problem])[0]
    self.assertLen(curve, 201)
    # L-BFGS on 4 parameters stops (line search cannot improve) long before 200 iterations.
    self.assertEqual(curve[-1], curve[-2])
    self.assertEqual(curve[-1], curve[100])

  def test_errors(self):
    with self.assertRaises(ValueError) as ctx:
      evaluation.Runner(Noisy(), 5).curves(evaluation.scipy_baseline("cg"),
                                           [Noisy().sample("test", 0)])
    self.assertEqual(str(ctx.exception), "The scipy baselines (cg, lbfgs) need a full-batch, "
                     "deterministic objective; problem family 'noisy' has none (full_batch=False: "
                     "its batches change from step to step). Families with one: quadratic, "
                     "logistic_regression, robust_linear_regression, two_layer_net.")
    with self.assertRaisesRegex(ValueError, r"^The scipy baselines \(cg, lbfgs\) need a "
                                r"full-batch"):
      evaluation.evaluate(Noisy(), [evaluation.baseline("sgd", 0.1),
                                    evaluation.scipy_baseline("lbfgs")], num_problems=1)
    with self.assertRaises(ValueError) as ctx:
      evaluation.scipy_baseline("bfgs")
    self.assertEqual(str(ctx.exception), "Unknown scipy baseline 'bfgs'. Valid scipy baselines: "
                     "cg, lbfgs.")
    with self.assertRaisesRegex(ValueError, r"^cg \(scipy CG\) has no learning rate to tune\.$"):
      evaluation.tune_learning_rate(evaluation.Runner(_LOGISTIC, 5),
                                    evaluation.scipy_baseline("cg"),
                                    [_LOGISTIC.sample("validation", 0)])


class EvaluateTest(tf.test.TestCase):

  def test_scipy_baselines_alongside_tuned_ones(self):
    specs = [evaluation.scipy_baseline("cg"), evaluation.scipy_baseline("lbfgs"),
             evaluation.baseline("sgd")]
    results = evaluation.evaluate(_LOGISTIC, specs, num_problems=3, horizon=10,
                                  tuning_problems=2, grid=(0.1, 1.0), speedup_horizon_factor=2)
    self.assertEqual(sorted(results["tuning"]), ["adam (for speed-up)", "sgd"])
    self.assertIn(results["optimizers"]["sgd"]["learning_rate"], (0.1, 1.0))
    for name, method in (("cg", "CG"), ("lbfgs", "L-BFGS-B")):
      entry = results["optimizers"][name]
      self.assertIsNone(entry["learning_rate"])
      self.assertEqual(entry["scipy_method"], method)
      expected = evaluation.Runner(_LOGISTIC, 10).curves(
          evaluation.scipy_baseline(name), [_LOGISTIC.sample("test", i) for i in range(3)])
      self.assertAllClose(results["curves"][name], expected, rtol=1e-12)
      self.assertAllClose(entry["final_loss_mean"], expected[:, -1].mean(), rtol=1e-12)
    # On these convex problems L-BFGS ends below tuned gradient descent.
    self.assertLess(results["optimizers"]["lbfgs"]["final_loss_mean"],
                    results["optimizers"]["sgd"]["final_loss_mean"])
    self.assertIn("| lbfgs | none (scipy L-BFGS-B) |", evaluation.report_markdown(results))

  def test_command_line(self):
    out = os.path.join(self.get_temp_dir(), "eval")
    common = [sys.executable, "-m", "scripts.evaluate", "--num_problems=2", "--horizon=5",
              "--tuning_problems=1", "--grid=0.1,1", "--speedup_horizon_factor=2",
              f"--output_dir={out}"]
    run = subprocess.run(common + ["--problem=logistic_regression", "--optimizers=cg,lbfgs,sgd"],
                         cwd=_REPO, capture_output=True, text=True, timeout=600, check=False)
    self.assertEqual(run.returncode, 0, msg=run.stderr[-3000:])
    with open(os.path.join(out, "results.json"), encoding="utf-8") as f:
      data = json.load(f)
    self.assertEqual(list(data["optimizers"]), ["cg", "lbfgs", "sgd"])
    self.assertEqual(data["optimizers"]["cg"]["scipy_method"], "CG")
    self.assertLen(data["optimizers"]["lbfgs"]["curve_mean"], 6)

  def test_command_line_parsing(self):
    # In a fresh process: the script's absl flags clash with other scripts' flags
    # defined in the same process (pytest-xdist runs several test files per process).
    script = ("import json\nfrom absl import app\nfrom scripts import evaluate as e\n"
              "specs = e.parse_optimizers('lbfgs,cg,adam@0.1')\n"
              "print(json.dumps([(s.name, s.scipy_method, s.learning_rate) for s in specs]))\n"
              "try:\n  e.parse_optimizers('cg@0.1')\nexcept app.UsageError as err:\n"
              "  print(json.dumps(str(err)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, check=False, cwd=_REPO)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    lines = result.stdout.strip().splitlines()
    self.assertEqual(json.loads(lines[-2]), [["lbfgs", "L-BFGS-B", None], ["cg", "CG", None],
                                             ["adam@0.1", None, 0.1]])
    self.assertEqual(json.loads(lines[-1]), "--optimizers entry 'cg@0.1': cg (scipy CG) has no "
                     "learning rate.")


if __name__ == "__main__":
  tf.test.main()
