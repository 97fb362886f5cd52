"""Issue 22, six22: gps-mnist with `fan_in_reference` on the 7 transfer tasks, against the shipped version.

Reads NEW_DIR/results.json (the candidate gps-mnist and Adam(1e-3), run together, full protocol on the 7 tasks
of docs/results/gps22_ship/TRANSFER_TASKS.md) and the shipped gps-mnist's run (docs/results/gps_floor22/suite).
Prints per task the mean final training loss over the 3 test seeds (diverged seeds in brackets), whether it is at
or below Adam(1e-3)'s, the shipped version's, and the count (now: 6 of 7; the bar: 5 of 7).
Usage: python docs/results/six22/compare_transfer.py [NEW_DIR]   # default docs/results/six22/suite
"""

import json
import sys

OLD = "docs/results/gps_floor22/suite/results.json"
NEW, ADAM = "pretrained:gps-mnist", "adam@1e-3"
TRANSFER = ("breast_cancer_mlp_tanh", "classification_mlp_bn_dropout", "mnist1d_conv1d", "mnist_conv",
            "moons_mlp_deep_sigmoid", "topics_wide_embedding", "wine_mlp_deep_gelu")


def _rows(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)["rows"]


def main(argv):
  rows, old = _rows((argv[1] if len(argv) > 1 else "docs/results/six22/suite") + "/results.json"), _rows(OLD)
  print("| task | fan-in gps-mnist final (diverged/seeds) | Adam(1e-3) final (this run; shipped run's) | "
        "at or below | shipped gps-mnist final | test loss: fan-in / shipped |")
  print("|---|---|---|---|---|---|")
  hits = []
  for task in TRANSFER:
    new, adam = rows[task][NEW], rows[task][ADAM]
    win = new["final_train_loss"] <= adam["final_train_loss"]
    hits += [task] if win else []
    print(f"| {task} | {new['final_train_loss']:.3g} ({new['diverged']}/{new['seeds']}) | "
          f"{adam['final_train_loss']:.3g} ({old[task][ADAM]['final_train_loss']:.3g}) | "
          f"{'yes' if win else 'no'} | {old[task][NEW]['final_train_loss']:.3g} | "
          f"{new['test_loss']:.3g} / {old[task][NEW]['test_loss']:.3g} |")
  print()
  print(f"At or below Adam(1e-3) on the transfer tasks: {len(hits)} of {len(TRANSFER)} "
        f"(missing: {[t for t in TRANSFER if t not in hits]})")
  print(f"Tasks with a diverged seed: {[t for t in TRANSFER if rows[t][NEW]['diverged']]}")


if __name__ == "__main__":
  main(sys.argv)
