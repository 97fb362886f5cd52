"""Numbers of an evaluation: sums of losses, confidence intervals, speed-ups over Adam."""

import math
from typing import Optional

import numpy as np


def sum_loss(curves: np.ndarray) -> np.ndarray:
  """Per-problem sum of the losses after each update (area under the curve)."""
  return curves[:, 1:].sum(axis=1)


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
  """Steps tuned Adam needs to reach `final_loss`, divided by `horizon` (None: never).

  Example: Adam's mean curve reaches 1.0 after 2 of its steps; an optimizer
  that ends at 1.0 after a horizon of 4 steps is 2x slower than Adam.

  >>> adam = np.array([4.0, 2.0, 1.0, 0.5])
  >>> steps_to_reach(adam, 1.0), speedup(adam, final_loss=1.0, horizon=4)
  (2, 0.5)
  >>> speedup(adam, final_loss=0.1, horizon=4) is None  # Adam never gets there
  True
  """
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
