"""Outputs of an evaluation: `results.json`, the markdown table and the loss-curve plot."""

import json
import os
from typing import Optional

import numpy as np


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
