"""Headline numbers of GPS.md 5.10 from `scripts.evaluate` results.json files.

Usage (from the repository root):
  python docs/results/gps/summarize.py docs/results/gps/logreg_h100/results.json \
      --learned=runs/gps-logreg --baselines=sgd,momentum

Prints one JSON object per file:
* `fraction_below_best_baseline`: the fraction of iterations t = 1..min(100, T)
  where the learned optimizer's mean objective (over the test problems) is
  below the per-iteration minimum of the baselines' mean objectives;
* `fraction_below_better_baseline`: the same against the single baseline with
  the lower summed loss;
* `finite`, `value_at_40`, `value_at_end`, `ends_at_or_below_40`: whether the
  curve stays finite and ends no higher than at iteration 40.
"""

import argparse
import json
import math


def summarize(path, learned, baselines):
  with open(path, encoding="utf-8") as f:
    results = json.load(f)
  optimizers = results["optimizers"]
  curve = optimizers[learned]["curve_mean"]
  base_curves = {name: optimizers[name]["curve_mean"] for name in baselines}
  better = min(baselines, key=lambda name: optimizers[name]["sum_loss_mean"])
  last = min(100, len(curve) - 1)
  steps = range(1, last + 1)

  def below(t, reference):
    return curve[t] is not None and reference is not None and curve[t] < reference

  per_step_best = [min(c[t] for c in base_curves.values() if c[t] is not None) for t in steps]
  finite = all(v is not None and math.isfinite(v) for v in curve)
  return {
      "file": path, "horizon": len(curve) - 1, "learned": learned,
      "fraction_below_best_baseline": sum(below(t, b) for t, b in zip(steps, per_step_best)) / last,
      "better_baseline": better,
      "fraction_below_better_baseline": sum(below(t, base_curves[better][t]) for t in steps) / last,
      "finite": finite,
      "value_at_40": curve[40] if len(curve) > 40 else None,
      "value_at_end": curve[-1],
      "ends_at_or_below_40": bool(finite and len(curve) > 40 and curve[-1] <= curve[40]),
      "sum_loss_mean": {name: optimizers[name]["sum_loss_mean"]
                        for name in [learned, *baselines]},
      "final_loss_mean": {name: optimizers[name]["final_loss_mean"]
                          for name in [learned, *baselines]},
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("results", nargs="+", help="results.json files of scripts.evaluate")
  parser.add_argument("--learned", required=True, help="the learned optimizer's entry name")
  parser.add_argument("--baselines", default="sgd,momentum", help="comma list of baselines")
  args = parser.parse_args()
  for path in args.results:
    print(json.dumps(summarize(path, args.learned, args.baselines.split(","))))


if __name__ == "__main__":
  main()
