"""Issue 22: the re-shipped gps-mnist on the held-out suite against Adam(1e-3) and the tuned baselines.

Reads this folder's suite results.json (gps-mnist and Adam(1e-3), run in one environment) and the full
protocol's stored baselines (docs/results/suite_full/results.json, same test seeds and tasks, commit 78546b9's
environment). Prints per task: diverged seeds, gps-mnist's mean final training loss, Adam(1e-3)'s (this run's,
and the check against the stored one), the tuned baselines', and the counts against the issue's bars on the
transfer tasks of TRANSFER_TASKS.md.
Usage: python docs/results/gps22_ship/compare_suite.py [RESULTS_JSON]
"""

import json
import math
import sys

HERE = "docs/results/gps22_ship"
REFERENCE = "docs/results/suite_full/results.json"
NEW = "pretrained:gps-mnist"
ADAM = "adam@1e-3"
TUNED = ("adam", "adamw", "muon", "schedule_free_adamw")
# TRANSFER_TASKS.md (decided before the runs): feed-forward classification, larger than the 48-48 net.
TRANSFER = ("breast_cancer_mlp_tanh", "classification_mlp_bn_dropout", "mnist1d_conv1d", "mnist_conv",
            "moons_mlp_deep_sigmoid", "topics_wide_embedding", "wine_mlp_deep_gelu")
STRICT = ("breast_cancer_mlp_tanh", "classification_mlp_bn_dropout", "mnist1d_conv1d",
          "topics_wide_embedding")


def _rows(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)["rows"]


OLD_QUICK = ("docs/results/suite_all_quick/results.json",
             "docs/results/suite_embedding_quick/results.json")


def _final(curve):
  """The report's final training loss: the mean of the last 5% of the windows, inf if any is not finite."""
  if not all(math.isfinite(v) for v in curve):
    return math.inf
  k = max(1, math.ceil(0.05 * len(curve)))
  return sum(curve[-k:]) / k


def old_policy_table(path):
  """Seed 0: the first gps-mnist (gps_lstm, issue 19's quick runs) against the re-shipped one."""
  old = {}
  for quick in OLD_QUICK:
    for task, row in _rows(quick).items():
      if NEW in row:
        old[task] = row[NEW]
  with open(path, encoding="utf-8") as f:
    results = json.load(f)["results"]
  print("| task | gps_lstm gps-mnist (issue 19, seed 0) final (diverged) | gps_general gps-mnist seed 0 final |")
  print("|---|---|---|")
  for task in sorted(old):
    print(f"| {task} | {old[task]['final_train_loss']:.3g} ({old[task]['diverged']}) | "
          f"{_final(results[task][NEW]['runs'][0]['curve']):.3g} |")


def main(argv):
  rows, reference = _rows(argv[1] if len(argv) > 1 else f"{HERE}/suite/results.json"), _rows(REFERENCE)
  print("| task | transfer | gps-mnist final (diverged seeds) | Adam(1e-3) final (stored) | gps <= Adam(1e-3) "
        "| " + " | ".join(TUNED) + " |")
  print("|---|---|---|---|---|" + "---|" * len(TUNED))
  at_or_below, diverged = [], []
  for task in sorted(rows):
    new, adam = rows[task][NEW], rows[task][ADAM]
    stored = reference[task][ADAM]["final_train_loss"]
    win = new["final_train_loss"] <= adam["final_train_loss"]
    if win:
      at_or_below.append(task)
    if new["diverged"]:
      diverged.append(task)
    tuned = " | ".join(f"{reference[task][b]['final_train_loss']:.3g}" for b in TUNED)
    print(f"| {task} | {'yes' if task in TRANSFER else 'no'} | {new['final_train_loss']:.3g} "
          f"({new['diverged']}/{new['seeds']}) | {adam['final_train_loss']:.3g} ({stored:.3g}) | "
          f"{'yes' if win else 'no'} | {tuned} |")
  print()
  print(f"Tasks with a diverged seed: {len(diverged)} of {len(rows)} {diverged}")
  print(f"At or below Adam(1e-3) on all tasks: {len(at_or_below)} of {len(rows)}")
  for name, tasks in (("transfer", TRANSFER), ("strict transfer", STRICT)):
    hits = [t for t in tasks if t in at_or_below]
    print(f"At or below Adam(1e-3) on the {name} tasks: {len(hits)} of {len(tasks)} (missing: "
          f"{[t for t in tasks if t not in at_or_below]})")
  for baseline in TUNED:
    wins = sum(rows[t][NEW]["final_train_loss"] < reference[t][baseline]["final_train_loss"]
               for t in rows)
    print(f"Below tuned {baseline}: {wins} of {len(rows)}")
  print()
  old_policy_table(argv[1] if len(argv) > 1 else f"{HERE}/suite/results.json")


if __name__ == "__main__":
  main(sys.argv)
