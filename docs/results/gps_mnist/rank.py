"""Ranks the optimizers of `scripts.evaluate` results.json files (issue 6 tables).

Usage (from the repository root):
  python docs/results/gps_mnist/rank.py docs/results/gps_mnist/*/results.json

Prints one markdown table per file: optimizers ordered by the mean sum of
losses over the horizon (the meta-objective), with their rank by the mean
final loss, the mean first and final losses, and whether every curve of every
test problem stayed finite.
"""

import argparse
import json
import math


def rows(results):
  table = []
  for name, summary in results["optimizers"].items():
    curve = summary["curve_mean"]
    finite = all(v is not None and math.isfinite(v) for v in curve)
    table.append({"name": name, "sum": summary["sum_loss_mean"],
                  "final": summary["final_loss_mean"], "first": curve[0],
                  "finite": finite and not summary.get("num_diverged"),
                  "lr": summary.get("learning_rate")})
  worst = float("inf")
  by_sum = sorted(table, key=lambda r: worst if r["sum"] is None else r["sum"])
  by_final = sorted(table, key=lambda r: worst if r["final"] is None else r["final"])
  for rank, row in enumerate(by_sum, start=1):
    row["rank_sum"] = rank
  for rank, row in enumerate(by_final, start=1):
    row["rank_final"] = rank
  return by_sum


def markdown(path):
  with open(path, encoding="utf-8") as f:
    results = json.load(f)
  fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
  lines = [f"{results['problem']} ({results['num_problems']} test problems, "
           f"horizon {results['horizon']}; {path})", "",
           "| rank (sum) | optimizer | mean sum of losses | rank (final) | final loss | "
           "first loss | all finite | tuned lr |", "|---|---|---|---|---|---|---|---|"]
  for row in rows(results):
    lines.append(f"| {row['rank_sum']} | {row['name']} | {fmt(row['sum'])} | {row['rank_final']} "
                 f"| {fmt(row['final'])} | {fmt(row['first'])} | {row['finite']} | "
                 f"{fmt(row['lr'])} |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("paths", nargs="+")
  args = parser.parse_args()
  print("\n\n".join(markdown(p) for p in args.paths))


if __name__ == "__main__":
  main()
