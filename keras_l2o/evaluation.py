"""Fair evaluation of optimizers on held-out problems.

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

import dataclasses
import functools
import json
import math
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o import rules as rules_lib
from keras_l2o import step as step_lib
from keras_l2o import unroll as unroll_lib

BASELINES = ("sgd", "momentum", "nag", "rmsprop", "adam", "adagrad")
# Names of the scipy baselines and their `scipy.optimize.minimize` methods.
SCIPY_BASELINES = {"cg": "CG", "lbfgs": "L-BFGS-B"}
# Run as long as they can within the horizon: no early stop on small progress.
_SCIPY_OPTIONS = {"CG": {"gtol": 0.0}, "L-BFGS-B": {"ftol": 0.0, "gtol": 0.0}}
DEFAULT_GRID = tuple(float(v) for v in np.logspace(-4, 1, 21))  # 1e-4 .. 10, 4 per decade


@dataclasses.dataclass
class OptimizerSpec:
  """What to run: a rule, its meta-parameters and learning rate (None: tune it).

  A scipy baseline has `rule=None` and `scipy_method` set ("CG", "L-BFGS-B").
  """
  name: str
  rule: object
  meta_params: dict
  learning_rate: Optional[object] = None  # float, schedule, or None for "tune"
  scipy_method: Optional[str] = None

  @property
  def tuned(self) -> bool:
    return self.learning_rate is None and self.scipy_method is None


def baseline(name: str, learning_rate=None) -> OptimizerSpec:
  """A hand-designed baseline by name (its learning rate tuned when None)."""
  if name not in BASELINES:
    raise ValueError(f"Unknown baseline {name!r}. Valid baselines: {', '.join(BASELINES)}.")
  return OptimizerSpec(name, rules_lib.get(name), {}, learning_rate)


def scipy_baseline(name: str) -> OptimizerSpec:
  """Conjugate gradient (`"cg"`) or L-BFGS (`"lbfgs"`) by `scipy.optimize.minimize`."""
  if name not in SCIPY_BASELINES:
    raise ValueError(f"Unknown scipy baseline {name!r}. Valid scipy baselines: "
                     f"{', '.join(SCIPY_BASELINES)}.")
  return OptimizerSpec(name, None, {}, None, SCIPY_BASELINES[name])


def check_full_batch(family):
  """Raises ValueError unless `family` has a full-batch objective (what CG / L-BFGS need)."""
  if not getattr(family, "full_batch", False):
    raise ValueError(f"The scipy baselines ({', '.join(SCIPY_BASELINES)}) need a full-batch, "
                     f"deterministic objective; problem family {family.name!r} has none "
                     "(full_batch=False: its batches change from step to step). Families with "
                     "one: quadratic, logistic_regression, robust_linear_regression, "
                     "two_layer_net.")


def from_optimizer(name: str, optimizer) -> OptimizerSpec:
  """A `LearnedOptimizer` (its rule, meta-parameters and learning rate) as a spec.

  Keras-side options of the optimizer (clipping, weight decay, EMA) are not
  part of the evaluation unroll; a warning says so when they are set.
  """
  extras = {k: getattr(optimizer, k) for k in ("clipnorm", "clipvalue", "global_clipnorm",
                                               "weight_decay") if getattr(optimizer, k, None)}
  if extras or getattr(optimizer, "use_ema", False):
    logging.warning("Evaluating %s without its Keras options %s (the evaluation unroll applies "
                    "the rule and learning rate only).", name, extras)
  meta = tf.nest.map_structure(lambda v: tf.convert_to_tensor(v), optimizer.meta_params)
  lr = optimizer._learning_rate  # pylint: disable=protected-access
  if not callable(lr):  # a variable holding a constant rate (schedules stay callables)
    lr = float(np.asarray(lr.numpy() if hasattr(lr, "numpy") else lr))
  return OptimizerSpec(name, optimizer.rule, meta, lr)


def _scheduled_rate(schedule, step):
  return tf.cast(step_lib.learning_rate_at(schedule, step), tf.float32)


class Runner:
  """Runs specs on problems of one family with one traced unroll per (rule, horizon).

  Under a `tf.distribute` strategy with several replicas, each replica
  unrolls a different problem (problems in groups of `num_replicas_in_sync`);
  the curves are the ones a single device computes.
  """

  def __init__(self, family, horizon: int, strategy=None):
    self.family = family
    self.horizon = int(horizon)
    self.strategy = strategy or tf.distribute.get_strategy()
    self._functions = {}
    self._replicated = {}
    self._objective = None

  def _function(self, rule, horizon, schedule=None):
    """One traced unroll per (rule, horizon, schedule); a constant rate is an argument."""
    key = (id(rule), horizon, id(schedule))
    if key not in self._functions:
      def run(meta_params, tensors, learning_rate):
        if schedule is not None:
          learning_rate = functools.partial(_scheduled_rate, schedule)
        state = unroll_lib.init_state(rule, self.family, tensors)
        losses, final, _ = unroll_lib.unroll(rule, meta_params, self.family, tensors, state,
                                             horizon, learning_rate=learning_rate)
        return tf.concat([losses, final[None]], 0)
      self._functions[key] = (rule, schedule, tf.function(run, reduce_retracing=True))
    return self._functions[key][-1]

  def _value_and_gradient(self):
    """One traced `(tensors, x) -> (f(x), grad f(x))` over the flat float64 parameters."""
    if self._objective is None:
      family = self.family

      def value_and_gradient(tensors, x):
        shapes = [p.shape for p in family.init_params(tensors)]
        with tf.GradientTape() as tape:
          tape.watch(x)
          parts = tf.split(x, [s.num_elements() for s in shapes])
          params = [tf.reshape(p, s) for p, s in zip(parts, shapes)]
          loss = family.loss(tensors, params, family.batch(tensors, tf.constant(0, tf.int64)))
        return loss, tape.gradient(loss, x)

      self._objective = tf.function(value_and_gradient, reduce_retracing=True)
    return self._objective

  def scipy_curves(self, spec: OptimizerSpec, problems, horizon=None) -> np.ndarray:
    """`[len(problems), horizon + 1]` objective curves of a scipy baseline (non-finite as inf)."""
    from scipy import optimize  # pylint: disable=g-import-not-at-top
    check_full_batch(self.family)
    horizon = horizon or self.horizon
    value_and_gradient = self._value_and_gradient()
    curves = []
    for problem in problems:

      def fun(x, tensors=problem.tensors):
        loss, grad = value_and_gradient(tensors, tf.constant(x, tf.float64))
        return float(loss), grad.numpy()

      x0 = np.concatenate([np.ravel(p.numpy()) for p in self.family.init_params(problem.tensors)])
      curve = [fun(x0.astype(np.float64))[0]]
      with np.errstate(all="ignore"):
        optimize.minimize(fun, x0.astype(np.float64), jac=True, method=spec.scipy_method,
                          callback=_recorder(curve),
                          options={"maxiter": horizon, **_SCIPY_OPTIONS[spec.scipy_method]})
      curve = curve[:horizon + 1]
      curves.append(curve + [curve[-1]] * (horizon + 1 - len(curve)))  # held after a stop
    curves = np.asarray(curves, np.float64)
    curves[~np.isfinite(curves)] = np.inf
    return curves

  def curves(self, spec: OptimizerSpec, problems, learning_rate=None, horizon=None) -> np.ndarray:
    """`[len(problems), horizon + 1]` loss curves (non-finite values as inf)."""
    horizon = horizon or self.horizon
    if spec.scipy_method is not None:
      return self.scipy_curves(spec, problems, horizon)
    lr = spec.learning_rate if learning_rate is None else learning_rate
    if lr is None:
      raise ValueError(f"{spec.name}: no learning rate (tune it first).")
    schedule = lr if callable(lr) else None
    fn = self._function(spec.rule, horizon, schedule)
    run_lr = tf.constant(0.0 if schedule else float(lr), tf.float32)
    if self.strategy.num_replicas_in_sync > 1:
      curves = self._distributed_curves(fn, spec.meta_params, problems, run_lr)
    else:
      curves = [fn(spec.meta_params, p.tensors, run_lr).numpy() for p in problems]
    curves = np.asarray(curves, np.float64)
    curves[~np.isfinite(curves)] = np.inf
    return curves

  def _distributed_curves(self, fn, meta_params, problems, learning_rate) -> list:
    """Curves of `problems`, one problem per replica at a time (the last group padded)."""
    replicas = self.strategy.num_replicas_in_sync
    if fn not in self._replicated:
      strategy = self.strategy

      def replicated(meta_params, tensors, learning_rate):
        curve = strategy.run(fn, args=(meta_params, tensors, learning_rate))
        return strategy.gather(curve, axis=0)  # [replicas * (horizon + 1)]

      self._replicated[fn] = tf.function(replicated)
    curves = []
    for start in range(0, len(problems), replicas):
      group = list(problems[start:start + replicas])
      padded = group + [group[-1]] * (replicas - len(group))
      tensors = self.strategy.experimental_distribute_values_from_function(
          lambda ctx, padded=padded: padded[ctx.replica_id_in_sync_group].tensors)
      gathered = self._replicated[fn](meta_params, tensors, learning_rate).numpy()
      curves.extend(gathered.reshape(replicas, -1)[:len(group)])
    return curves


def _recorder(curve: list):
  """A `scipy.optimize.minimize` callback appending the objective after each iteration."""

  def callback(intermediate_result):  # scipy passes an OptimizeResult for this name
    curve.append(float(intermediate_result.fun))

  return callback


def sum_loss(curves: np.ndarray) -> np.ndarray:
  """Per-problem sum of the losses after each update (area under the curve)."""
  return curves[:, 1:].sum(axis=1)


def tune_learning_rate(runner: Runner, spec: OptimizerSpec, validation_problems,
                       grid=DEFAULT_GRID):
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
      scores[float(lr)] = float(np.mean(sum_loss(runner.curves(spec, validation_problems, lr))))
  finite = {lr: s for lr, s in scores.items() if math.isfinite(s)}
  if not finite:
    raise ValueError(f"{spec.name}: every learning rate of the grid diverged: {list(grid)}.")
  best = min(finite, key=finite.get)
  if best in (min(grid), max(grid)):
    logging.warning("%s: the tuned learning rate %g is at the edge of the grid.", spec.name, best)
  return best, scores


def mean_ci95(values: np.ndarray):
  """Mean and 95% Student-t confidence interval `[lo, hi]` of a 1-D sample."""
  values = np.asarray(values, np.float64)
  n = len(values)
  mean = float(np.mean(values))
  if n < 2 or not np.all(np.isfinite(values)):
    return mean, [mean, mean] if math.isfinite(mean) else [float("inf"), float("inf")]
  from scipy import stats  # pylint: disable=g-import-not-at-top
  half = float(stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
  return mean, [mean - half, mean + half]


def steps_to_reach(curve: np.ndarray, target: float) -> Optional[int]:
  """First step t with `curve[t] <= target`, or None if never."""
  hits = np.nonzero(np.asarray(curve) <= target)[0]
  return int(hits[0]) if len(hits) else None


def speedup(adam_mean_curve: np.ndarray, final_loss: float, horizon: int) -> Optional[float]:
  """Steps tuned Adam needs to reach `final_loss`, divided by `horizon` (None: never)."""
  steps = steps_to_reach(adam_mean_curve, final_loss)
  return None if steps is None else steps / horizon


def summarize(name, curves, learning_rate, horizon, adam_long_curve=None) -> dict:
  """The results.json entry of one optimizer."""
  sums = sum_loss(curves)
  finals = curves[:, -1]
  diverged = int(np.sum(~np.all(np.isfinite(curves), axis=1)))
  sum_mean, sum_ci = mean_ci95(sums)
  final_mean, final_ci = mean_ci95(finals)
  with np.errstate(invalid="ignore"):
    curve_mean = np.mean(curves, axis=0)
  entry = {
      "learning_rate": learning_rate,
      "sum_loss_mean": _finite_or_none(sum_mean),
      "sum_loss_ci95": [_finite_or_none(v) for v in sum_ci],
      "final_loss_mean": _finite_or_none(final_mean),
      "final_loss_ci95": [_finite_or_none(v) for v in final_ci],
      "speedup_over_adam": None,
      "curve_mean": [_finite_or_none(v) for v in curve_mean],
      "num_diverged": diverged,
  }
  if adam_long_curve is not None and math.isfinite(final_mean):
    entry["speedup_over_adam"] = speedup(adam_long_curve, final_mean, horizon)
  return entry


def _finite_or_none(value):
  value = float(value)
  return value if math.isfinite(value) else None


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
    check_full_batch(family)
  runner = Runner(family, horizon, strategy)
  test = [family.sample("test", i) for i in range(num_problems)]
  validation = [family.sample("validation", i) for i in range(tuning_problems)]
  results = {"problem": problem_name or family.name, "num_problems": num_problems,
             "horizon": horizon, "optimizers": {}}
  raw, tuning = {}, {}
  resolved = []
  for spec in specs:
    lr = spec.learning_rate
    if spec.tuned:
      lr, tuning[spec.name] = tune_learning_rate(runner, spec, validation, grid)
      logging.info("%s: tuned learning rate %g", spec.name, lr)
    resolved.append((spec, lr))
  adam_lr = next((lr for s, lr in resolved
                  if s.rule is not None and s.rule.name == "adam" and s.tuned), None)
  if adam_lr is None:
    adam_spec = baseline("adam")
    adam_lr, tuning["adam (for speed-up)"] = tune_learning_rate(runner, adam_spec, validation, grid)
  adam_long = runner.curves(baseline("adam"), test, adam_lr, horizon * speedup_horizon_factor)
  with np.errstate(invalid="ignore"):
    adam_long_mean = np.mean(adam_long, axis=0)
  for spec, lr in resolved:
    curves = runner.curves(spec, test, lr)
    raw[spec.name] = curves
    shown_lr = None if lr is None or spec.rule.is_learned or callable(lr) else float(lr)
    results["optimizers"][spec.name] = summarize(spec.name, curves, shown_lr, horizon,
                                                 adam_long_mean)
    if spec.scipy_method is not None:
      results["optimizers"][spec.name]["scipy_method"] = spec.scipy_method
    logging.info("%s: sum of losses %.4g, final loss %.4g", spec.name,
                 results["optimizers"][spec.name]["sum_loss_mean"] or float("inf"),
                 results["optimizers"][spec.name]["final_loss_mean"] or float("inf"))
  results["curves"] = raw
  results["tuning"] = tuning
  return results


def write_results(results: dict, output_dir: str, title: Optional[str] = None) -> dict:
  """Writes `results.json`, `report.md` and `curves.png`; returns their paths."""
  os.makedirs(output_dir, exist_ok=True)
  public = {k: v for k, v in results.items() if k not in ("curves",)}
  paths = {"json": os.path.join(output_dir, "results.json"),
           "report": os.path.join(output_dir, "report.md"),
           "plot": os.path.join(output_dir, "curves.png")}
  with open(paths["json"], "w", encoding="utf-8") as f:
    json.dump(public, f, indent=2)
  with open(paths["report"], "w", encoding="utf-8") as f:
    f.write(report_markdown(results, title))
  plot_curves(results, paths["plot"], title)
  return paths


def _fmt(value, digits=4):
  return "—" if value is None else f"{value:.{digits}g}"


def report_markdown(results: dict, title: Optional[str] = None) -> str:
  """The results table in markdown, best sum of losses first."""
  rows = sorted(results["optimizers"].items(),
                key=lambda kv: kv[1]["sum_loss_mean"] if kv[1]["sum_loss_mean"] is not None
                else float("inf"))
  lines = [f"## {title or results['problem']}", "",
           f"{results['num_problems']} held-out test problems, horizon {results['horizon']}; "
           "baselines' learning rates tuned on validation problems; 95% CI over problems.", "",
           "| optimizer | learning rate | sum of losses [95% CI] | final loss [95% CI] | "
           "speed-up over tuned Adam | diverged |",
           "|---|---|---|---|---|---|"]
  for name, r in rows:
    lr = "learned" if r["learning_rate"] is None else f"{r['learning_rate']:.3g}"
    if r.get("scipy_method"):
      lr = f"none (scipy {r['scipy_method']})"
    speed = _fmt(r["speedup_over_adam"], 3) if r["speedup_over_adam"] is not None else (
        "Adam never reaches it" if r["final_loss_mean"] is not None else "—")
    lines.append(f"| {name} | {lr} | {_fmt(r['sum_loss_mean'])} [{_fmt(r['sum_loss_ci95'][0])}, "
                 f"{_fmt(r['sum_loss_ci95'][1])}] | {_fmt(r['final_loss_mean'])} "
                 f"[{_fmt(r['final_loss_ci95'][0])}, {_fmt(r['final_loss_ci95'][1])}] | {speed} | "
                 f"{r['num_diverged']} |")
  return "\n".join(lines) + "\n"


def plot_curves(results: dict, path: str, title: Optional[str] = None):
  """Log-scale mean loss against step, with 95% confidence bands."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from scipy import stats  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
  for name, curves in results.get("curves", {}).items():
    finite = curves[np.all(np.isfinite(curves), axis=1)]
    if not len(finite):
      continue
    mean = finite.mean(axis=0)
    steps = np.arange(len(mean))
    line, = ax.plot(steps, mean, label=name, lw=1.6)
    if len(finite) > 1:
      half = stats.t.ppf(0.975, len(finite) - 1) * finite.std(axis=0, ddof=1) / np.sqrt(
          len(finite))
      ax.fill_between(steps, np.maximum(mean - half, 1e-12), mean + half,
                      color=line.get_color(), alpha=0.2, lw=0)
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("loss (mean over test problems)")
  ax.set_title(title or f"{results['problem']}: {results['num_problems']} test problems")
  ax.grid(True, which="both", alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)
