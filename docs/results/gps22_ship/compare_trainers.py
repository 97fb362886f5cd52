"""Issue 22: the same policy class (gps_general, step_scale 0.003) meta-trained by GPS, BPTT and PES, on the suite.

Seed 0 of every suite task: GPS's run is the re-shipped gps-mnist's seed-0 run of the full-protocol evaluation
(suite/results.json), BPTT's and PES's come from trainers/results.json (run_trainers.sh), Adam(1e-3)'s from the
former. Prints the final training losses, the divergences and the counts against Adam(1e-3) on all tasks and on
the transfer tasks of TRANSFER_TASKS.md.
Usage: python docs/results/gps22_ship/compare_trainers.py
"""

import json
import math

HERE = "docs/results/gps22_ship"
TRANSFER = ("breast_cancer_mlp_tanh", "classification_mlp_bn_dropout", "mnist1d_conv1d", "mnist_conv",
            "moons_mlp_deep_sigmoid", "topics_wide_embedding", "wine_mlp_deep_gelu")
BPTT, PES = "runs/gps22-bptt-general/best", "runs/gps22-pes-general/best"


def _final(run):
  """The report's final training loss of one run (inf if not finite)."""
  curve = run["curve"]
  if not all(math.isfinite(v) for v in curve):
    return math.inf
  k = max(1, math.ceil(0.05 * len(curve)))
  return sum(curve[-k:]) / k


def _diverged(run):
  return not math.isfinite(_final(run)) or _final(run) > run["initial_loss"]


def main():
  with open(f"{HERE}/suite/results.json", encoding="utf-8") as f:
    gps_results = json.load(f)["results"]
  with open(f"{HERE}/trainers/results.json", encoding="utf-8") as f:
    other = json.load(f)["results"]
  columns = {"GPS (gps-mnist)": lambda t: gps_results[t]["pretrained:gps-mnist"]["runs"][0],
             "BPTT": lambda t: next(v for k, v in other[t].items() if k.endswith(BPTT))["runs"][0],
             "PES": lambda t: next(v for k, v in other[t].items() if k.endswith(PES))["runs"][0],
             "Adam(1e-3)": lambda t: gps_results[t]["adam@1e-3"]["runs"][0]}
  print("| task | transfer | " + " | ".join(columns) + " |")
  print("|---|---|" + "---|" * len(columns))
  tasks = sorted(other)
  for task in tasks:
    cells = []
    for get in columns.values():
      run = get(task)
      cells.append(f"{_final(run):.3g}" + (" (diverged)" if _diverged(run) else ""))
    print(f"| {task} | {'yes' if task in TRANSFER else 'no'} | " + " | ".join(cells) + " |")
  print()
  adam = columns["Adam(1e-3)"]
  for name, get in list(columns.items())[:3]:
    wins = [t for t in tasks if _final(get(t)) <= _final(adam(t))]
    print(f"{name}: diverged on {sum(_diverged(get(t)) for t in tasks)} of {len(tasks)}; at or below "
          f"Adam(1e-3) on {len(wins)} of {len(tasks)}, on {len([t for t in wins if t in TRANSFER])} of "
          f"{len(TRANSFER)} transfer tasks")


if __name__ == "__main__":
  main()
