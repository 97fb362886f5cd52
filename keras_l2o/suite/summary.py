"""Numbers of a suite evaluation: per task and across tasks."""

import math

import numpy as np

from keras_l2o.suite import metrics
from keras_l2o.suite import optimizers as optimizers_lib


def _mean(values):
  values = [v for v in values if v is not None and math.isfinite(v)]
  return float(np.mean(values)) if values else math.nan


def _std(values):
  values = [v for v in values if v is not None and math.isfinite(v)]
  return float(np.std(values)) if len(values) > 1 else 0.0 if values else math.nan


def optimizer_row(entry, reference_entry) -> dict:
  """One optimizer's numbers on one task (means over test seeds)."""
  runs = entry["runs"]
  finals = [metrics.final_loss(r["curve"]) for r in runs]
  row = {
      "setting": entry["setting"],
      "at_grid_edge": bool(entry.get("at_grid_edge")),
      "searched_rates": list(entry.get("searched_rates") or []),
      "final_train_loss": _mean(finals) if all(map(math.isfinite, finals)) else math.inf,
      "final_train_loss_std": _std(finals),
      "diverged": sum(metrics.diverged(r["curve"], r["initial_loss"]) for r in runs),
      "seeds": len(runs),
      "seconds": _mean([r.get("seconds") for r in runs]),
  }
  for part in ("validation", "test"):
    row[f"{part}_loss"] = _mean([r[part].get("loss") for r in runs]) if all(
        r[part] for r in runs) else math.inf
    accuracies = [r[part].get("accuracy") for r in runs if r[part]]
    row[f"{part}_accuracy"] = _mean(accuracies) if any(a is not None for a in accuracies) else None
  if reference_entry is not None:
    speedups = [metrics.speedup(r["curve"], ref["curve"], r["horizon"])
                for r, ref in zip(runs, reference_entry["runs"])]
    row["speedup"] = _mean(speedups) if all(math.isfinite(s) for s in speedups) else math.inf
  else:
    row["speedup"] = None
  return row


def task_rows(task_results) -> dict:
  """`{optimizer: optimizer_row}` for one task's results."""
  reference = task_results.get(optimizers_lib.REFERENCE)
  return {name: optimizer_row(entry, reference) for name, entry in task_results.items()}


def across_tasks(rows_by_task, seed=0) -> dict:
  """Per optimizer: wins against each baseline (lower mean final training loss), the
  IQM of its per-task speed-ups over tuned AdamW with a 95% bootstrap interval, and
  the tasks on which any seed diverged."""
  names = sorted({n for rows in rows_by_task.values() for n in rows})
  baselines = [b for b in optimizers_lib.BASELINES if b in names]
  out = {}
  for name in names:
    wins = {}
    for other in baselines:
      if other == name:
        continue
      pairs = [(rows[name]["final_train_loss"], rows[other]["final_train_loss"])
               for rows in rows_by_task.values() if name in rows and other in rows]
      wins[other] = {"wins": sum(a < b for a, b in pairs), "tasks": len(pairs)}
    speedups = [rows[name]["speedup"] for rows in rows_by_task.values()
                if name in rows and rows[name]["speedup"] is not None]
    value, low, high = metrics.iqm_interval(speedups, seed=seed)
    out[name] = {"wins": wins, "speedup_iqm": value, "speedup_low": low, "speedup_high": high,
                 "speedup_tasks": len([s for s in speedups if math.isfinite(s)]),
                 "diverged_tasks": sorted(t for t, rows in rows_by_task.items()
                                          if name in rows and rows[name]["diverged"])}
  return out
