"""The evaluation protocol: tuned baselines, held-out test problems, fair metrics.

The protocol (Andrychowicz et al. 2016, done carefully):

* every optimizer runs on the same `num_problems` *test* problems of a family,
  from their initial point, for `horizon` steps, with fresh state each run;
* every hand-designed baseline's learning rate is tuned per family on a log
  grid, on *validation* problems only (never the test problems), by the mean
  sum of losses over the horizon;
* metrics per optimizer, each with a 95% confidence interval over problems
  (Student t): the sum of losses after each update (area under the curve), the
  final loss, and the mean loss curve; and the speed-up over tuned Adam: the
  number of steps tuned Adam needs to reach the optimizer's mean final loss,
  divided by the horizon (> 1: faster than Adam; Adam is run for
  `speedup_horizon_factor` times the horizon to measure it).

The loss curve of a run is `f(theta_0), ..., f(theta_H)`: the mean loss of the
problem at the parameters before the first update and after each of the H
updates (on the batch of that step for stochastic problems).

Conjugate gradient and L-BFGS (`scipy_baseline("cg")`, `scipy_baseline("lbfgs")`:
`scipy.optimize.minimize` with method "CG" / "L-BFGS-B", float64, at most H
iterations, no learning rate) run on families with a full-batch objective
(`family.full_batch`); their curve holds the objective after each *iteration*
(each may evaluate the objective several times, in its line search), the last
value repeated when they stop before H iterations.
"""

import math
from typing import Optional

from absl import logging
import numpy as np

from keras_l2o.evaluation import metrics
from keras_l2o.evaluation import runner as runner_lib
from keras_l2o.evaluation import specs as specs_lib

DEFAULT_GRID = tuple(float(v) for v in np.logspace(-4, 1, 21))  # 1e-4 .. 10, 4 per decade


def tune_learning_rate(runner: runner_lib.Runner, spec: specs_lib.OptimizerSpec,
                       validation_problems, grid=DEFAULT_GRID):
  """Picks the grid learning rate with the lowest mean sum of losses on validation problems.

  Args:
    runner: a `Runner` for the family.
    spec: the baseline (its `learning_rate` is ignored).
    validation_problems: problems of the *validation* split.
    grid: candidate learning rates.

  Returns:
    `(best_learning_rate, {learning_rate: mean sum of losses})`.

  Raises:
    ValueError: if a problem is not from the validation split, or every rate diverges.
  """
  if spec.scipy_method is not None:
    raise ValueError(f"{spec.name} (scipy {spec.scipy_method}) has no learning rate to tune.")
  bad = [p for p in validation_problems if p.split != "validation"]
  if bad:
    raise ValueError(f"Learning rates are tuned on validation problems only; received a "
                     f"{bad[0].split!r} problem (index {bad[0].index}).")
  scores = {}
  for lr in grid:
    with np.errstate(invalid="ignore", over="ignore"):
      curves = runner.curves(spec, validation_problems, lr)
      scores[float(lr)] = float(np.mean(metrics.sum_loss(curves)))
  finite = {lr: s for lr, s in scores.items() if math.isfinite(s)}
  if not finite:
    raise ValueError(f"{spec.name}: every learning rate of the grid diverged: {list(grid)}.")
  best = min(finite, key=finite.get)
  if best in (min(grid), max(grid)):
    logging.warning("%s: the tuned learning rate %g is at the edge of the grid.", spec.name, best)
  return best, scores


def _tune(runner, specs, validation, grid):
  """Learning rates of `specs` (tuned where None) and tuned Adam's, for the speed-ups.

  Returns:
    `([(spec, learning rate)], {name: grid scores}, Adam's tuned learning rate)`.
  """
  tuning, resolved = {}, []
  for spec in specs:
    lr = spec.learning_rate
    if spec.tuned:
      lr, tuning[spec.name] = tune_learning_rate(runner, spec, validation, grid)
      logging.info("%s: tuned learning rate %g", spec.name, lr)
    resolved.append((spec, lr))
  adam_lr = next((lr for s, lr in resolved
                  if s.rule is not None and s.rule.name == "adam" and s.tuned), None)
  if adam_lr is None:
    adam_spec = specs_lib.baseline("adam")
    adam_lr, tuning["adam (for speed-up)"] = tune_learning_rate(runner, adam_spec, validation, grid)
  return resolved, tuning, adam_lr


def evaluate(family, specs, *, num_problems: int = 100, horizon: Optional[int] = None,
             tuning_problems: int = 10, grid=DEFAULT_GRID, speedup_horizon_factor: int = 5,
             problem_name: Optional[str] = None, strategy=None) -> dict:
  """Evaluates optimizer specs on held-out test problems of `family`.

  Args:
    family: a `ProblemFamily`.
    specs: `OptimizerSpec`s; those with `learning_rate=None` are tuned on
      `tuning_problems` validation problems over `grid` (scipy baselines have
      no learning rate: they are not tuned).
    num_problems: number of test problems.
    horizon: optimizer steps per problem (default: the family's).
    tuning_problems: validation problems used for tuning.
    grid: learning rates tried when tuning.
    speedup_horizon_factor: tuned Adam runs this many horizons to measure
      speed-ups beyond 1.
    problem_name: the name recorded in the results (default: `family.name`).
    strategy: a `tf.distribute.Strategy` whose replicas unroll different
      problems (default: the current strategy, usually one device).

  Returns:
    The results dict (the schema of `results.json`), plus `"curves"`: the raw
    per-problem curves by optimizer name (numpy; not written to JSON) and
    `"tuning"`: the grid scores of tuned optimizers.

  Raises:
    ValueError: for a scipy baseline on a family without a full-batch
      objective (before any run).
  """
  horizon = int(horizon or family.default_horizon)
  if any(spec.scipy_method is not None for spec in specs):
    specs_lib.check_full_batch(family)
  runner = runner_lib.Runner(family, horizon, strategy)
  test = [family.sample("test", i) for i in range(num_problems)]
  validation = [family.sample("validation", i) for i in range(tuning_problems)]
  results = {"problem": problem_name or family.name, "num_problems": num_problems,
             "horizon": horizon, "optimizers": {}}
  resolved, tuning, adam_lr = _tune(runner, specs, validation, grid)
  raw = {}
  adam_long = runner.curves(specs_lib.baseline("adam"), test, adam_lr,
                            horizon * speedup_horizon_factor)
  with np.errstate(invalid="ignore"):
    adam_long_mean = np.mean(adam_long, axis=0)
  for spec, lr in resolved:
    curves = runner.curves(spec, test, lr)
    raw[spec.name] = curves
    shown_lr = None if lr is None or spec.rule.is_learned or callable(lr) else float(lr)
    results["optimizers"][spec.name] = metrics.summarize(spec.name, curves, shown_lr, horizon,
                                                         adam_long_mean)
    if spec.scipy_method is not None:
      results["optimizers"][spec.name]["scipy_method"] = spec.scipy_method
    logging.info("%s: sum of losses %.4g, final loss %.4g", spec.name,
                 results["optimizers"][spec.name]["sum_loss_mean"] or float("inf"),
                 results["optimizers"][spec.name]["final_loss_mean"] or float("inf"))
  results["curves"] = raw
  results["tuning"] = tuning
  return results
