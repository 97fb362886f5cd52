"""Issue 21: training-loss wins against test-loss wins, for every optimizer measured on the suite.

For each optimizer and each of the 13 suite tasks, the means over the 3 test seeds are compared
with tuned AdamW-with-cosine's: a *training win* is a final training loss at or below AdamW's
(the issue's bar: >= 7 of 13), a *test win* a test loss at or below AdamW's (the held-out bar:
>= 7 of 13). The optimizers come from the full-protocol suite results (`results.json`, whose
tuned AdamW rows must be equal in every file: the script checks) and from
`decay_and_rate.py`'s JSON lines (means over seeds 0-2, the same runs as the suite's).

Writes `per_task.png` (per task, every optimizer's final training loss against its test loss)
and `tradeoff.png` (one point per optimizer, the issue's quadrant shaded; black: the
baselines, blue: learned optimizers, red: learned optimizers with weight decay) and prints a
markdown table sorted by min(training wins, test wins).

Usage:
  python docs/results/tradeoff21/tradeoff.py OUT_DIR RESULTS.json... [--runs=RUNS.jsonl,...]
"""

import collections
import json
import os
import sys

import numpy as np

BAR = 7
STORED_DEFAULT = "/work/runs/cands/mlp-pes-best+cosine"  # the shipped default's export, + cosine
BASELINES = ("adam", "adam@1e-3", "muon", "schedule_free_adamw")  # tuned, except Adam(1e-3)
KEYS = ("final_train_loss", "validation_loss", "test_loss")


def read_results(paths):
  """`(adamw row per task, {optimizer: {task: row}})` from suite `results.json` files."""
  adamw, rows = None, collections.defaultdict(dict)
  for path in paths:
    with open(path, encoding="utf-8") as f:
      by_task = json.load(f)["rows"]
    file_adamw = {task: {k: row["adamw"][k] for k in KEYS} for task, row in by_task.items()}
    if adamw is not None and file_adamw != adamw:
      raise ValueError(f"{path}: its tuned AdamW rows differ from the first file's.")
    adamw = file_adamw
    for task, row in by_task.items():
      for name, values in row.items():
        if name != "adamw":
          rows[name][task] = {k: values[k] for k in KEYS}
  return adamw, rows


def variant_name(variant):
  """`WD:P` -> "default + cosine + decay WD*s^P"; `G:WD:P` -> the same, "gated";
  `L:PEAK` -> "default + cosine, peak PEAK"; `F:D` -> "..., frozen on collapse"."""
  parts = variant.split(":")
  if parts[0] == "L":
    return f"default + cosine, peak {parts[1]}"
  if parts[0] == "F":
    return f"default + cosine, frozen on collapse over {parts[1]} decades"
  if parts[0] == "G":
    decades = f", {parts[3]} decades" if len(parts) == 4 else ""
    return f"default + cosine + gated decay {parts[1]}*s^{parts[2]}{decades}"
  return "default + cosine" + (f" + decay {parts[0]}*s^{parts[1]}" if float(parts[0]) else "")


def read_runs(paths):
  """`{variant: {task: means over seeds}}` from `decay_and_rate.py` JSON lines."""
  runs = collections.defaultdict(lambda: collections.defaultdict(list))
  for path in paths:
    with open(path, encoding="utf-8") as f:
      for record in map(json.loads, f):
        runs[record["variant"]][record["task"]].append(record)
  return {variant_name(variant): {
      task: {k: float(np.mean([r[k] for r in records])) for k in KEYS}
      for task, records in by_task.items() if len(records) == 3}
          for variant, by_task in runs.items()}


def at_or_below(adamw, by_task, task, key):
  return by_task[task][key] <= adamw[task][key]


def wins(adamw, by_task):
  """Counts of tasks at or below AdamW, per measure and on both training and test loss (`both`);
  None if a task is missing."""
  if set(by_task) != set(adamw):
    return None
  counts = {k: sum(at_or_below(adamw, by_task, t, k) for t in adamw) for k in KEYS}
  counts["both"] = sum(at_or_below(adamw, by_task, t, "final_train_loss") and
                       at_or_below(adamw, by_task, t, "test_loss") for t in adamw)
  return counts


def oracle(adamw, rows):
  """The largest min(training wins, test wins) reachable by choosing one of `rows` per task.

  Per task, the choices give a set of (training win, test win) outcomes; a task with a (1, 1)
  outcome adds to both counts, and the others add (1, 0) or (0, 1) where available.
  """
  both = trains = tests = either = 0
  for task in adamw:
    outcomes = {(at_or_below(adamw, r, task, "final_train_loss"),
                 at_or_below(adamw, r, task, "test_loss")) for r in rows.values()}
    if (True, True) in outcomes:
      both += 1
    elif (True, False) in outcomes and (False, True) in outcomes:
      either += 1
    else:
      trains += (True, False) in outcomes
      tests += (False, True) in outcomes
  # the `either` tasks go to whichever count is behind
  return max(min(both + trains + k, both + tests + either - k) for k in range(either + 1))


def color_of(name):
  """Black: a baseline; red: a learned optimizer with weight decay; blue: other learned ones."""
  if name in BASELINES:
    return "black"
  return "tab:red" if "decay" in name or "wd=" in name else "tab:blue"


def plot(counts, path):
  """Training wins against test wins; points are numbered, the key lists the names."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.patches  # pylint: disable=g-import-not-at-top,unused-import
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, (ax, key) = plt.subplots(1, 2, figsize=(12, 6.5), gridspec_kw={"width_ratios": [3, 2]})
  ax.add_patch(matplotlib.patches.Rectangle((BAR - 0.5, BAR - 0.5), 14, 14, color="tab:green",
                                            alpha=0.12, label="the issue's two bars (>= 7 each)"))
  order = sorted(counts, key=lambda n: (-counts[n]["test_loss"], counts[n]["final_train_loss"]))
  at = collections.defaultdict(list)
  for number, name in enumerate(order, 1):
    c = counts[name]
    at[(c["final_train_loss"], c["test_loss"])].append(number)
    ax.scatter(c["final_train_loss"], c["test_loss"], color=color_of(name), s=25)
    key.text(0.0, 1.0 - 0.031 * number, f"{number:2d}  {short(name)}", color=color_of(name),
             fontsize=7, family="monospace", transform=key.transAxes)
  for (x, y), numbers in at.items():
    ax.annotate(",".join(map(str, numbers)), (x, y), fontsize=7, xytext=(4, 3),
                textcoords="offset points")
  key.axis("off")
  ax.plot([0, 13], [13, 0], color="gray", lw=0.8, ls="--", label="training + test wins = 13")
  ax.set(xlim=(-0.5, 13.5), ylim=(-0.5, 13.5), xlabel="tasks with training loss <= tuned AdamW's",
         ylabel="tasks with test loss <= tuned AdamW's",
         title="13 suite tasks, 3 seeds: fitting wins vs held-out wins")
  ax.legend(loc="upper right", fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=130)


def plot_tasks(adamw, rows, path):
  """Per task: each optimizer's (final training loss, test loss), log-log; AdamW's corner shaded."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top,unused-import
  tasks = sorted(adamw)
  fig, axes = plt.subplots(3, 5, figsize=(17, 10))
  for ax, task in zip(axes.flat, tasks):
    ref = adamw[task]
    floor = 1e-8  # a loss of exactly 0 (float32 underflow) is drawn here
    for name, by_task in rows.items():
      if task in by_task:
        x, y = (max(by_task[task][k], floor) for k in ("final_train_loss", "test_loss"))
        ax.scatter(x, y, s=10, color=color_of(name), alpha=0.8)
    x0, y0 = max(ref["final_train_loss"], floor), ref["test_loss"]
    ax.scatter(x0, y0, marker="*", s=120, color="tab:green", zorder=3)
    ax.set(xscale="log", yscale="log", title=task, xlabel="final training loss", ylabel="test loss")
    ax.fill_between([1e-12, x0], [1e-12, 1e-12], [y0, y0], color="tab:green", alpha=0.12)
    xs = [max(r[task]["final_train_loss"], floor) for r in rows.values() if task in r] + [x0]
    ys = [max(r[task]["test_loss"], floor) for r in rows.values() if task in r] + [y0]
    ax.set_xlim(min(xs) / 2, max(xs) * 2)
    ax.set_ylim(min(ys) / 1.5, max(ys) * 1.5)
    for axis in (ax.xaxis, ax.yaxis):
      axis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  for ax in axes.flat[len(tasks):]:
    ax.axis("off")
  fig.suptitle("Per task: every optimizer's (training loss, test loss); green star: tuned AdamW; "
               "green area: at or below it on both.\n"
               "Black: baselines, blue: learned, red: learned with weight decay")
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def short(name):
  return (name.replace("/work/runs/cands/mlp-pes-best", "default").replace("/work/runs/cands/", "")
          .replace("/work/runs/collapse21/", "collapse21-").replace("/best+", "-best+")
          .replace("pretrained:", "")
          .replace("default + cosine", "default+cosine"))


def main(argv):
  out_dir, paths = argv[0], [a for a in argv[1:] if not a.startswith("--runs=")]
  run_paths = [p for a in argv[1:] if a.startswith("--runs=") for p in a[7:].split(",")]
  adamw, rows = read_results(paths)
  runs = read_runs(run_paths)
  rerun = runs.pop("default + cosine", None)
  if rerun is not None and STORED_DEFAULT in rows:  # the same runs: they must agree
    diff = max(abs(rerun[t][k] - rows[STORED_DEFAULT][t][k]) for t in rerun for k in KEYS)
    print(f"The re-run default + cosine against the stored runs: max |difference| {diff:g}\n")
  rows.update(runs)
  counts = {name: c for name, by_task in rows.items() if (c := wins(adamw, by_task))}
  os.makedirs(out_dir, exist_ok=True)
  plot(counts, os.path.join(out_dir, "tradeoff.png"))
  plot_tasks(adamw, {n: rows[n] for n in counts}, os.path.join(out_dir, "per_task.png"))
  print("| optimizer | training loss <= AdamW | test loss <= AdamW | validation loss <= AdamW | "
        "both training and test |")
  print("|---|---|---|---|---|")
  order = sorted(counts, key=lambda n: (-min(counts[n]["final_train_loss"], counts[n]["test_loss"]),
                                        -counts[n]["final_train_loss"]))
  for name in order:
    c = counts[name]
    print(f"| {short(name)} | {c['final_train_loss']} | {c['test_loss']} | "
          f"{c['validation_loss']} | {c['both']} |")
  learned = {n: rows[n] for n in counts if n not in BASELINES}
  print(f"\nA per-task choice among the {len(learned)} learned ones reaches "
        f"min(training wins, test wins) = {oracle(adamw, learned)}.")
  best = max(min(c["final_train_loss"], c["test_loss"]) for c in counts.values())
  print(f"\n{len(counts)} optimizers; the largest min(training wins, test wins) is {best} "
        f"(bar: {BAR}); the largest sum is "
        f"{max(c['final_train_loss'] + c['test_loss'] for c in counts.values())}.")


if __name__ == "__main__":
  main(sys.argv[1:])
