"""The suite's metrics, defined on a run's loss curve.

A run of H steps logs `W` windows of `H / W` steps each; `curve[j]` is the mean
training-batch loss over window j (the loss Keras reports for the batches of that
window, with dropout and batch statistics as in training).

* smoothed curve: `smooth[j]` is the mean of windows `j-k+1 .. j` with
  `k = ceil(0.05 W)` (fewer at the start): the mean batch loss over the last 5%
  of the steps up to the end of window j.
* final training loss: `smooth[-1]`, the mean batch loss over the last 5% of the
  steps; inf if any window is not finite.
* steps to reach a loss L: the end step `(j + 1) H / W` of the first window whose
  smoothed loss is <= L (None if none is).
* speed-up over a reference (tuned AdamW), with `f` the optimizer's final
  training loss and `f_ref` the reference's: if `f > f_ref`, the steps the
  reference needs to reach `f` divided by the horizon (<= 1); if `f < f_ref`, the
  horizon divided by the steps the optimizer needs to reach `f_ref` (> 1); 1 if
  they are equal (so the reference against itself scores exactly 1). A diverged
  optimizer scores 0; against a diverged reference the speed-up is inf.
* divergence: a non-finite batch loss, or a final training loss above the
  loss at initialisation (both on the training data).
"""

import math

import numpy as np
from scipy import stats

FINAL_FRACTION = 0.05


def smooth(curve) -> np.ndarray:
  """Trailing mean of the window losses over the last 5% of the windows."""
  curve = np.asarray(curve, np.float64)
  k = max(1, int(math.ceil(FINAL_FRACTION * curve.size)))
  return np.array([curve[max(0, j - k + 1):j + 1].mean() for j in range(curve.size)])


def final_loss(curve) -> float:
  """Mean of the last 5% of the curve's windows (inf if any window is not finite)."""
  curve = np.asarray(curve, np.float64)
  if curve.size == 0 or not np.all(np.isfinite(curve)):
    return math.inf
  return float(smooth(curve)[-1])


def steps_to_reach(curve, target, horizon):
  """The end step of the first window whose smoothed loss is <= `target`, or None."""
  curve = np.asarray(curve, np.float64)
  smoothed = smooth(curve)
  hits = np.nonzero(np.isfinite(smoothed) & (smoothed <= target))[0]
  if hits.size == 0:
    return None
  return int(round((hits[0] + 1) * horizon / curve.size))


def speedup(curve, reference_curve, horizon) -> float:
  """Speed-up of `curve` over `reference_curve` (see the module docstring)."""
  mine, theirs = final_loss(curve), final_loss(reference_curve)
  if not math.isfinite(mine):
    return 0.0
  if not math.isfinite(theirs):
    return math.inf
  if mine == theirs:
    return 1.0
  if mine > theirs:
    return steps_to_reach(reference_curve, mine, horizon) / horizon
  return horizon / steps_to_reach(curve, theirs, horizon)


def diverged(curve, initial_loss) -> bool:
  """True if a window's loss is not finite or the final loss exceeds `initial_loss`."""
  final = final_loss(curve)
  return not math.isfinite(final) or final > initial_loss


def iqm(values) -> float:
  """Interquartile mean: the mean of the middle 50% (`scipy.stats.trim_mean(values, 0.25)`)."""
  return float(stats.trim_mean(np.asarray(values, np.float64), 0.25))


def iqm_interval(values, confidence=0.95, seed=0, resamples=2000):
  """`(iqm, low, high)`: the IQM and its percentile-bootstrap interval over the values."""
  values = np.asarray(values, np.float64)
  values = values[np.isfinite(values)]
  if values.size == 0:
    return math.nan, math.nan, math.nan
  if values.size < 2 or np.all(values == values[0]):
    return iqm(values), float(values.min()), float(values.max())
  result = stats.bootstrap((values,), iqm, n_resamples=resamples, confidence_level=confidence,
                           method="percentile", random_state=np.random.default_rng(seed))
  return iqm(values), float(result.confidence_interval.low), float(result.confidence_interval.high)
