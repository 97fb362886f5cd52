"""Plots of a suite evaluation (matplotlib, Agg): one per task and a summary."""

import math
import os

import numpy as np



def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot  # pylint: disable=g-import-not-at-top
  return pyplot


def task_plot(task, task_results, path):
  """Mean training-loss curves (over test seeds) of every optimizer on one task."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  for name, entry in task_results.items():
    curves = np.array([r["curve"] for r in entry["runs"]], np.float64)
    horizon = entry["runs"][0]["horizon"]
    steps = (np.arange(curves.shape[1]) + 1) * horizon / curves.shape[1]
    ax.plot(steps, curves.mean(axis=0), label=name)  # a diverged seed leaves a gap
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (window mean)")
  ax.set_title(task)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def summary_plot(rows_by_task, path):
  """Per task, each optimizer's final training loss relative to tuned AdamW's (log scale)."""
  plt = _pyplot()
  tasks = sorted(rows_by_task)
  names = sorted({n for rows in rows_by_task.values() for n in rows})
  fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(tasks)), 4.5))
  for i, name in enumerate(names):
    ratios = []
    for task in tasks:
      rows = rows_by_task[task]
      mine = rows.get(name, {}).get("final_train_loss", math.nan)
      ref = rows.get("adamw", {}).get("final_train_loss", math.nan)
      ratio = mine / ref if ref and math.isfinite(ref) and ref > 0 else math.nan
      ratios.append(min(ratio, 1e4) if not math.isnan(ratio) else math.nan)
    ax.scatter(np.arange(len(tasks)) + 0.08 * (i - len(names) / 2), ratios, label=name, s=18)
  ax.axhline(1.0, color="grey", lw=0.8)
  ax.set_yscale("log")
  ax.set_xticks(np.arange(len(tasks)))
  ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=7)
  ax.set_ylabel("final training loss / tuned AdamW's")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def write_plots(results, rows_by_task, directory) -> list:
  """Writes `plots/TASK.png` for every task and `plots/summary.png`; returns the paths."""
  os.makedirs(directory, exist_ok=True)
  paths = []
  for task, task_results in results.items():
    paths.append(os.path.join(directory, f"{task}.png"))
    task_plot(task, task_results, paths[-1])
  paths.append(os.path.join(directory, "summary.png"))
  summary_plot(rows_by_task, paths[-1])
  return paths
