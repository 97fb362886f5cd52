"""Issue 21: candidates against a reference on the meta-training tasks' held-out data.

Reads the jsonl lines `docs/results/weight_decay/select_on_meta_tasks.py` prints (one per
task, seed, weight decay and optimizer) and prints, per (optimizer, weight decay), the mean
over tasks and seeds of log(held-out loss / reference's) and log(training loss /
reference's), where the reference is the first file's optimizer without weight decay, and
on how many of the task-seed pairs the held-out loss is lower.

Usage: python docs/results/heldout21/compare_meta_tasks.py REFERENCE.jsonl OTHER.jsonl ...
"""

import collections
import json
import math
import sys


def rows(paths):
  for path in paths:
    with open(path, encoding="utf-8") as f:
      for line in f:
        row = json.loads(line)
        if "task" in row:
          yield row


def main(paths):
  data = collections.defaultdict(dict)
  reference = None
  for row in rows(paths):
    key = (row["optimizer"], row["weight_decay"])
    reference = reference or (row["optimizer"], 0.0)
    data[key][(row["task"], row["seed"])] = (row["train_loss"], row["test_loss"])
  base = data[reference]
  for key, runs in data.items():
    pairs = [(runs[k], base[k]) for k in runs if k in base]
    held = [math.log(a[1] / b[1]) for a, b in pairs]
    train = [math.log(a[0] / b[0]) for a, b in pairs]
    print(json.dumps({"optimizer": key[0], "weight_decay": key[1], "runs": len(pairs),
                      "mean_log_heldout_ratio": round(sum(held) / len(held), 4),
                      "mean_log_train_ratio": round(sum(train) / len(train), 4),
                      "heldout_lower": sum(h < 0 for h in held)}))


if __name__ == "__main__":
  main(sys.argv[1:])
