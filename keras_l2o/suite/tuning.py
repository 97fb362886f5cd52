"""Tuning a baseline's learning rate on validation seeds, extending the grid past an edge.

The rule (`GRID_RULE`): run every setting of the baseline's grid on the
validation seeds and score it by its mean final training loss (a diverged run
scores inf). While the best setting's learning rate is the smallest (largest)
rate searched, add the next rate half a decade below (above), with every other
value of the grid (e.g. each of AdamW's weight decays), and score it too; stop
when the best rate has a searched rate on both sides, or when the next rate would
leave `LR_BOUNDS`. The chosen setting is the argmin; ties go to the smaller
learning rate, then to the setting searched first.

Example:

>>> next_rate(1e-4, -1), next_rate(3e-2, +1), next_rate(0.3, +1)
(3e-05, 0.1, 1.0)
"""

import math

from keras_l2o.suite import optimizers as optimizers_lib

LR_BOUNDS = (1e-5, 1.0)
GRID_RULE = (f"while the argmin's learning rate is the smallest (largest) searched, the grid is "
             f"extended by the rate half a decade below (above) it, with each weight decay of the "
             f"grid, until the argmin is interior or the next rate would leave "
             f"[{LR_BOUNDS[0]:g}, {LR_BOUNDS[1]:g}]")


def next_rate(rate: float, direction: int) -> float:
  """The rate half a decade above (`direction=+1`) or below (-1) `rate` on the 1, 3, 10 grid."""
  k = round(2.0 * math.log10(rate)) + direction
  return float(f"{10.0 ** (k / 2.0):.0e}")


def _in_bounds(rate) -> bool:
  return LR_BOUNDS[0] * (1 - 1e-9) <= rate <= LR_BOUNDS[1] * (1 + 1e-9)


def _with_rate(grid, rate) -> list:
  """The settings of `grid` with their learning rate replaced by `rate` (each once)."""
  settings = []
  for setting in grid:
    new = dict(setting, learning_rate=rate)
    if new not in settings:
      settings.append(new)
  return settings


def _argmin(searched, values) -> int:
  return min(range(len(values)),
             key=lambda i: (values[i], searched[i]["learning_rate"], i))  # inf sorts last


def _edge_direction(searched, best) -> int:
  """-1 / +1 if the best rate is the smallest / largest searched, else 0."""
  rates = sorted({s["learning_rate"] for s in searched})
  rate = searched[best]["learning_rate"]
  return -1 if rate == rates[0] else 1 if rate == rates[-1] else 0


def tune(spec, choice, score_fn, on_more=None) -> dict:
  """Tunes `choice` on `spec` by `GRID_RULE`.

  Args:
    spec: the task's `TaskSpec`.
    choice: a tuned `keras_l2o.suite.optimizers.Choice`.
    score_fn: `score_fn(setting) -> [final training loss per validation seed]`
      (it runs, or reads back, one run per validation seed).
    on_more: called with the number of settings the rule adds, before it runs them
      (to grow a progress bar), or None.

  Returns:
    A dict: `setting` (the chosen one), `scores` (setting key -> mean final loss,
    in search order), `searched_rates` (sorted), `at_grid_edge` (True if the
    chosen rate is still the smallest or largest searched: only at a bound).
  """
  del spec  # the runs are `score_fn`'s; kept for symmetry with the protocol's calls
  searched, values = [], []

  def add(settings):
    for setting in settings:
      finals = score_fn(setting)
      searched.append(setting)
      values.append(sum(finals) / len(finals))

  add(choice.grid)
  while True:
    best = _argmin(searched, values)
    direction = _edge_direction(searched, best)
    if not direction:
      break
    rate = next_rate(searched[best]["learning_rate"], direction)
    if not _in_bounds(rate):
      break
    more = _with_rate(choice.grid, rate)
    if on_more:
      on_more(len(more))
    add(more)
  return {"setting": searched[best],
          "scores": {optimizers_lib.setting_key(s): v for s, v in zip(searched, values)},
          "searched_rates": sorted({s["learning_rate"] for s in searched}),
          "at_grid_edge": bool(_edge_direction(searched, best))}

