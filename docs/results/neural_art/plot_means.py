"""Mean loss curves of a keras-l2o-evaluate results.json on a linear axis (no confidence bands).

The evaluation's own curves.png draws 95% bands on a log axis; at 128 px the band of momentum, which
diverges on one test problem, reaches below zero and squeezes the plot. Usage:
  python docs/results/neural_art/plot_means.py RESULTS_JSON OUTPUT_PNG TITLE
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position


def main(results_path, output_path, title):
  with open(results_path, encoding="utf-8") as f:
    results = json.load(f)
  fig, ax = plt.subplots(figsize=(7, 4.2))
  for name, entry in results["optimizers"].items():
    curve = [v if v is not None else float("nan") for v in entry["curve_mean"]]
    lr = entry["learning_rate"]
    label = f"{name} (lr {lr:g})" if lr is not None else f"{name} (learned)"
    ax.plot(range(len(curve)), curve, label=label, lw=2 if lr is None else 1.2)
  ax.set_ylim(0.3, 1.0)
  ax.set_xlabel("step")
  ax.set_ylabel("mean loss over test problems")
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(output_path, dpi=90)


if __name__ == "__main__":
  main(*sys.argv[1:4])
