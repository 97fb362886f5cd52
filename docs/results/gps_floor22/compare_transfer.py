"""Issue 22 follow-up: the re-shipped gps-mnist (annealing magnitude) on the 7 transfer tasks.

Reads this folder's suite/results.json (the new gps-mnist and Adam(1e-3), run together, full protocol on the 7
tasks of docs/results/gps22_ship/TRANSFER_TASKS.md) and the previous gps-mnist's run
(docs/results/gps22_ship/suite/results.json). Prints per task the mean final training loss over the 3 test seeds
(diverged seeds in brackets), and the count against the bar (at or below Adam(1e-3): 5 of 7).
Usage: python docs/results/gps_floor22/compare_transfer.py [NEW_DIR OLD_RESULTS]
(six22 ran it as `... docs/results/six22/suite docs/results/gps_floor22/suite/results.json`: the card with
`fan_in_reference` against the one before it.)
"""

import json
import sys

HERE = "docs/results/gps_floor22"
OLD = "docs/results/gps22_ship/suite/results.json"
NEW, ADAM = "pretrained:gps-mnist", "adam@1e-3"
TRANSFER = ("breast_cancer_mlp_tanh", "classification_mlp_bn_dropout", "mnist1d_conv1d", "mnist_conv",
            "moons_mlp_deep_sigmoid", "topics_wide_embedding", "wine_mlp_deep_gelu")


def _rows(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)["rows"]


def main(argv):
  new_dir, old_results = argv[1:3] if len(argv) > 2 else (f"{HERE}/suite", OLD)
  rows, old = _rows(f"{new_dir}/results.json"), _rows(old_results)
  print("| task | new gps-mnist final (diverged/seeds) | Adam(1e-3) final (this run; issue 22's run) | "
        "new <= Adam(1e-3) | previous gps-mnist final | new test loss | previous test loss |")
  print("|---|---|---|---|---|---|---|")
  hits = []
  for task in TRANSFER:
    new, adam = rows[task][NEW], rows[task][ADAM]
    win = new["final_train_loss"] <= adam["final_train_loss"]
    hits += [task] if win else []
    print(f"| {task} | {new['final_train_loss']:.3g} ({new['diverged']}/{new['seeds']}) | "
          f"{adam['final_train_loss']:.3g} ({old[task][ADAM]['final_train_loss']:.3g}) | "
          f"{'yes' if win else 'no'} | {old[task][NEW]['final_train_loss']:.3g} | "
          f"{new['test_loss']:.3g} | {old[task][NEW]['test_loss']:.3g} |")
  print()
  print(f"At or below Adam(1e-3) on the transfer tasks: {len(hits)} of {len(TRANSFER)} "
        f"(missing: {[t for t in TRANSFER if t not in hits]})")
  print(f"Tasks with a diverged seed: {[t for t in TRANSFER if rows[t][NEW]['diverged']]}")


if __name__ == "__main__":
  main(sys.argv)
