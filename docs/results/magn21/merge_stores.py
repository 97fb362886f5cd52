"""Issue 21: a suite report of new learned optimizers against baselines stored under other code.

The suite store reuses a run only if it was made by the same `keras_l2o` code (its fingerprint).
A change to a learned rule changes the fingerprint, although it changes no baseline's numbers (they
are Keras's optimizers), and re-tuning every baseline takes hours. So the new optimizers run in a
new store together with `adam@1e-3`, and this script
1. checks that every optimizer present in both stores (at least `adam@1e-3`) has bit-identical
   runs in both: same curve, same validation and test losses, seed by seed (it stops otherwise);
2. adds the new store's other optimizers to the old store's results and writes the report
   (`results.json`, `report.md`, plots) with the suite's own `write_report` to OUT_DIR.

Usage: python docs/results/magn21/merge_stores.py OLD/results.json NEW/results.json OUT_DIR
"""

import json
import sys

from keras_l2o.suite import report

COMPARED = ("curve", "validation", "test", "initial_loss")


def _load(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def check_shared(old, new) -> list:
  """`[(task, optimizer)]` present in both stores; raises SystemExit if any run differs."""
  shared = []
  for task, entries in new.items():
    for name, entry in entries.items():
      if name not in old.get(task, {}):
        continue
      for seed, (a, b) in enumerate(zip(old[task][name]["runs"], entry["runs"])):
        differs = [key for key in COMPARED if a[key] != b[key]]
        if differs:
          raise SystemExit(f"{task} / {name} / test seed {seed}: {differs} differ between the "
                           "stores; their results cannot be merged.")
      shared.append((task, name))
  return shared


def main(old_path, new_path, out_dir):
  old, new = _load(old_path), _load(new_path)
  shared = check_shared(old["results"], new["results"])
  if not shared:
    raise SystemExit("No optimizer is in both stores: run the new store with adam@1e-3.")
  merged = old["results"]
  for task, entries in new["results"].items():
    for name, entry in entries.items():
      merged.setdefault(task, {}).setdefault(name, entry)
  protocol = dict(old["protocol"], merged_from={
      "baselines": old_path, "new_optimizers": new_path,
      "identical_in_both": [f"{task}/{name}" for task, name in shared],
      "new_environment": new["protocol"].get("environment")})
  paths = report.write_report(merged, protocol, out_dir)
  print(json.dumps({"identical_in_both": len(shared), "report": paths["report"]}))


if __name__ == "__main__":
  main(*sys.argv[1:4])
