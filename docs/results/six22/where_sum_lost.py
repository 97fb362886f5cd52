"""Issue 22, six settings: where gps-mnist's sum of 800 losses is lost against tuned Adam.

Reads the mean loss curves (50 test nets) that run_six.sh stored for the shipped gps-mnist and Adam at issue 6's
tuned rate, and prints per setting the sum of the mean curve over step windows (0-10, 10-50, 50-200, 200-400,
400-800) for both and their difference, so the loss of the sum can be located in time.
Usage: python docs/results/six22/where_sum_lost.py [FOLDER]   # FOLDER: run_six.sh's OUT (default gps_floor22/six)
"""

import json
import os
import sys

import numpy as np

SETTINGS = ("mnist_800", "mnist_200x200", "mnist_batch10", "digits", "breast_cancer", "wine")
EDGES = (0, 10, 50, 200, 400, 801)


def main(argv):
  folder = argv[1] if len(argv) > 1 else "docs/results/gps_floor22/six"
  head = " | ".join(f"{a}-{b - 1}" for a, b in zip(EDGES, EDGES[1:]))
  print(f"| setting | optimizer | total | {head} |")
  print("|---" * (3 + len(EDGES) - 1) + "|")
  for setting in SETTINGS:
    with open(os.path.join(folder, setting, "results.json"), encoding="utf-8") as f:
      opt = json.load(f)["optimizers"]
    adam = next(k for k in opt if k.startswith("adam@"))
    rows = {}
    for name in ("pretrained:gps-mnist", adam):
      c = np.asarray(opt[name]["curve_mean"], dtype=float)
      rows[name] = [c[a:b].sum() for a, b in zip(EDGES, EDGES[1:])]
      print(f"| {setting} | {name} | {sum(rows[name]):.2f} | "
            + " | ".join(f"{v:.2f}" for v in rows[name]) + " |")
    diff = np.subtract(rows["pretrained:gps-mnist"], rows[adam])
    print(f"| {setting} | gps - adam | {diff.sum():+.2f} | " + " | ".join(f"{v:+.2f}" for v in diff) + " |")


if __name__ == "__main__":
  main(sys.argv)
