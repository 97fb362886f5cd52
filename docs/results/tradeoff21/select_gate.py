"""Issue 21: choose a gated decay (`G:WD:P:D` of `decay_and_rate.py`) on the suite's tuning seed.

The suite tunes its baselines on seed 10000 and tests on seeds 0-2. This script applies the
same split to the gated decay's three settings: it compares each variant's seed-10000 runs
with tuned AdamW's seed-10000 run at AdamW's chosen setting (read from the suite store), counts
the tasks where the variant's final training loss and its test loss are at or below AdamW's,
and ranks the variants by min(training count, test count), then the sum, then the training
count. The rule was written before the grid's numbers were seen; the chosen variant is then run
on the test seeds. Other variants in the files (e.g. the plain default, `0:1`) are listed for
reference and never chosen.

Usage:
  python docs/results/tradeoff21/select_gate.py STORE_DIR RESULTS.json GRID.jsonl...
(STORE_DIR: a suite store holding tuned AdamW's runs, e.g. the one `results.json` came from.)
"""

import json
import sys

from keras_l2o.suite import metrics
from keras_l2o.suite import optimizers
from keras_l2o.suite import protocol
from keras_l2o.suite import store as store_lib

import tradeoff  # beside this script


def adamw_on_tuning_seed(store_dir, results_path):
  """Per task: tuned AdamW's final training, validation and test loss on the tuning seed."""
  with open(results_path, encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  store = store_lib.RunStore(store_dir)
  (seed,) = protocol.VALIDATION_SEEDS
  reference = {}
  for task, row in rows.items():
    record = store.get(task, "adamw", seed, optimizers.setting_key(row["adamw"]["setting"]))
    if record is None:
      raise SystemExit(f"{store_dir}: no tuned AdamW run of {task} on seed {seed}.")
    reference[task] = {"final_train_loss": metrics.final_loss(record["curve"]),
                       "validation_loss": record["validation"]["loss"],
                       "test_loss": record["test"]["loss"]}
  return reference


def main(store_dir, results_path, *grid_paths):
  reference = adamw_on_tuning_seed(store_dir, results_path)
  by_variant = {}
  for path in grid_paths:
    with open(path, encoding="utf-8") as f:
      for r in map(json.loads, f):
        by_variant.setdefault(r["variant"], {})[r["task"]] = r
  ranked = []
  for variant, runs in by_variant.items():
    counts = tradeoff.wins(reference, runs)  # None unless the variant ran on every task
    if counts is not None:
      train, test = counts["final_train_loss"], counts["test_loss"]
      ranked.append(((min(train, test), train + test, train), variant, train, test))
  for key, variant, train, test in sorted(ranked, reverse=True):
    print(json.dumps({"variant": variant, "training_le_adamw": train, "test_le_adamw": test}))
  gated = [entry for entry in ranked if entry[1].startswith("G:")]  # other rows: references
  print(json.dumps({"chosen": max(gated)[1], "tasks": len(reference)}))


if __name__ == "__main__":
  main(*sys.argv[1:])
