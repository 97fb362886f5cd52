"""Issue 22: one policy class (gps_general, step_scale 0.003) meta-trained by GPS, BPTT and PES.

Validation loss (mean loss over 400 steps on the same 4 validation nets of P2's MNIST family)
against the share of each run's meta-training, each run taking 23-26 min of wall time.
Usage: python docs/results/gps22_compare/plot_validation.py  (reads the metrics files beside it)
"""
import json
import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = {"GPS (20 iterations, 25 min 44 s)": "metrics_gps.jsonl",
        "BPTT (18,000 truncations of 20 steps, 23 min)": "metrics_bptt.jsonl",
        "PES (3,000 truncations of 50 steps, 8 pairs, 24 min)": "metrics_pes.jsonl"}


def main():
  fig, ax = plt.subplots(figsize=(7, 4))
  for label, name in RUNS.items():
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
      records = [json.loads(line) for line in f]
    points = [(r["step"], r["validation_loss"]) for r in records if "validation_loss" in r]
    last = points[-1][0]
    ax.plot([s / last for s, _ in points], [v for _, v in points], marker="o", markersize=3,
            label=label)
  ax.set(xlabel="share of the run's meta-training steps", ylabel="validation loss (4 nets, 400 steps)",
         title="gps_general on P2's MNIST net, three meta-training methods")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(HERE, "validation.png"), dpi=120)


if __name__ == "__main__":
  main()
