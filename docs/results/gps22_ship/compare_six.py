"""Issue 22: ranks the re-shipped gps-mnist among issue 6's optimizers on the six settings.

Reads docs/results/gps_mnist/SETTING/results.json (issue 6: the five tuned baselines, the BPTT lstm and the
first gps-mnist, now gps-mnist-lstm) and docs/results/gps22_ship/six/SETTING/results.json (the new gps-mnist
and Adam at issue 6's tuned rate). Prints, per setting, the table by the mean sum of the 800 losses, the check
that the rerun Adam matches issue 6's tuned Adam, and at the end how many settings the new policy's sum is
below every tuned baseline's.
Usage: python docs/results/gps22_ship/compare_six.py [FOLDER]  (FOLDER: run_six.sh's OUT; default the one above)
"""

import json
import math
import os
import sys

SETTINGS = ("mnist_800", "mnist_200x200", "mnist_batch10", "digits", "breast_cancer", "wine")
BASELINES = ("sgd", "momentum", "adam", "rmsprop", "adagrad")
OLD, NEW = "docs/results/gps_mnist", "docs/results/gps22_ship/six"


def _load(folder, setting):
  with open(os.path.join(folder, setting, "results.json"), encoding="utf-8") as f:
    return json.load(f)["optimizers"]


def _finite(summary):
  return all(v is not None and math.isfinite(v) for v in summary["curve_mean"]) and not summary.get(
      "num_diverged")


def table(setting, folder=NEW):
  """Markdown lines for one setting, and whether the new policy beats every tuned baseline."""
  old, new = _load(OLD, setting), _load(folder, setting)
  rows = {("gps-mnist-lstm (issue 6)" if k == "pretrained:gps-mnist" else k): v
          for k, v in old.items()}
  rows["pretrained:gps-mnist (gps_general)"] = new["pretrained:gps-mnist"]
  adam_new = next(v for k, v in new.items() if k.startswith("adam@"))
  check = (f"check: Adam@{old['adam']['learning_rate']:g} rerun sum {adam_new['sum_loss_mean']:.6g} "
           f"vs issue 6's tuned Adam {old['adam']['sum_loss_mean']:.6g}")
  order = sorted(rows, key=lambda k: rows[k]["sum_loss_mean"])
  lines = [f"### {setting}", "", check, "",
           "| rank (sum) | optimizer | mean sum of losses | final loss | all finite |", "|---|---|---|---|---|"]
  for rank, name in enumerate(order, start=1):
    s = rows[name]
    lines.append(f"| {rank} | {name} | {s['sum_loss_mean']:.4g} | {s['final_loss_mean']:.4g} | "
                 f"{_finite(s)} |")
  best = min(old[b]["sum_loss_mean"] for b in BASELINES)
  return lines, new["pretrained:gps-mnist"]["sum_loss_mean"] < best


def main(argv):
  folder = argv[1] if len(argv) > 1 else NEW  # a later gps-mnist's runs (run_six.sh's OUT)
  wins = 0
  for setting in SETTINGS:
    lines, beats = table(setting, folder)
    wins += beats
    print("\n".join(lines + [""]))
  print(f"Settings where gps-mnist's sum of losses is below every tuned baseline's: {wins} of "
        f"{len(SETTINGS)}")


if __name__ == "__main__":
  main(sys.argv)
