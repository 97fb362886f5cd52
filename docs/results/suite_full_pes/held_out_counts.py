"""Issue 21: per optimizer, the suite tasks where its mean held-out loss is no worse than tuned AdamW's.

Reads a suite `results.json` (its `rows`: per task and optimizer, the means over test seeds) and
prints, for every optimizer, the count of tasks with validation loss <= AdamW's and with test
loss <= AdamW's, and the tasks of each.
Usage: python docs/results/suite_full_pes/held_out_counts.py docs/results/suite_full_pes/results.json
"""

import json
import sys


def main(path):
  with open(path, encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  names = sorted({name for task in rows.values() for name in task} - {"adamw"})
  for name in names:
    counts = {}
    for key in ("validation_loss", "test_loss"):
      counts[key] = sorted(task for task, row in rows.items()
                           if name in row and row[name][key] <= row["adamw"][key])
    print(json.dumps({"optimizer": name, "tasks": sum(name in r for r in rows.values()),
                      "validation_le_adamw": len(counts["validation_loss"]),
                      "test_le_adamw": len(counts["test_loss"]),
                      "test_le_adamw_tasks": counts["test_loss"]}))


if __name__ == "__main__":
  main(sys.argv[1])
