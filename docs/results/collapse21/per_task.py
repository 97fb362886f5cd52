"""Issue 21: final training loss / test loss per suite task (means of the 3 test seeds).

Bold where the mean is at or below tuned AdamW's (the issue's bars count those tasks).

Usage:
  python docs/results/collapse21/per_task.py RESULTS.json NAME=OPTIMIZER [NAME=OPTIMIZER ...]
"""

import json
import sys


def cell(values, adamw):
  parts = []
  for key in ("final_train_loss", "test_loss"):
    text = f"{values[key]:.3g}"
    parts.append(f"**{text}**" if values[key] <= adamw[key] else text)
  return " / ".join(parts)


def main(path, entries):
  with open(path, encoding="utf-8") as f:
    rows = json.load(f)["rows"]
  names = [e.split("=", 1) for e in entries]
  print("| task | tuned AdamW | " + " | ".join(n for n, _ in names) + " |")
  print("|---|---|" + "---|" * len(names))
  for task, row in sorted(rows.items()):
    adamw = row["adamw"]
    cells = [cell(row[optimizer], adamw) for _, optimizer in names]
    print(f"| {task} | {adamw['final_train_loss']:.3g} / {adamw['test_loss']:.3g} | "
          + " | ".join(cells) + " |")


if __name__ == "__main__":
  main(sys.argv[1], sys.argv[2:])
