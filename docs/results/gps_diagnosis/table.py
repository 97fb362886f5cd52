"""Markdown table of diagnose.py's records: python docs/results/gps_diagnosis/table.py FILE.jsonl."""

import collections
import json
import sys


def main(path):
  runs = collections.OrderedDict()
  for line in open(path, encoding="utf-8"):
    record = json.loads(line)
    runs.setdefault((record["task"], record["optimizer"]), []).append(record)
  print("| task | optimizer | loss at steps " + "/".join(["1", "10", "100", "400", "800"])
        + " | RMS(u) / RMS(w) at step 1 | max abs(u) in steps 1-10 | cos(u, -g) at step 100"
        " | dead ReLU units at the end |")
  print("|---|---|---|---|---|---|---|")
  for (task, optimizer), records in runs.items():
    steps = {r["step"]: r for r in records if "step" in r}
    dead = [r["dead_relu_units"] for r in records if "dead_relu_units" in r]
    losses = " / ".join(f"{steps[s]['loss']:.3g}" if s in steps else "-"
                        for s in (1, 10, 100, 400, 800))
    ratio = f"{steps[1]['rms_u'] / steps[1]['rms_w']:.3f}" if 1 in steps else "-"
    early = max((r["max_u"] for s, r in steps.items() if s <= 10), default=float("nan"))
    cos = steps[100]["cos_u_neg_g"] if 100 in steps else "-"
    dead_text = ", ".join(f"{k} {v:.0%}" for k, v in dead[0].items()) if dead and dead[0] else (
        "no ReLU" if dead else "-")
    print(f"| {task} | {optimizer.split('/')[-1]} | {losses} | {ratio} | {early:.3g} | {cos} | "
          f"{dead_text} |")


if __name__ == "__main__":
  main(sys.argv[1])
