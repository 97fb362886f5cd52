"""Meta-training curves of the PES runs of issue 21: validation and meta-loss by meta-step.

The two `general` designs, and the `mlp` rule fine-tuned from `l2o-mlp-general`
(`--init_from`), shipped as `l2o-mlp-general-pes`. Validation: mean loss over
1,000 steps on 8 fixed validation problems at the rule's constant rate (log scale).

Usage: python docs/results/general_pes/plot_meta_training.py  (reads the metrics files beside it)
   or: python docs/results/general_pes/plot_meta_training.py OUT.png "LABEL=metrics.jsonl" ...
       (other runs: each label's metrics file, the figure written to OUT.png)
"""
import json
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = {"general (Newton–Schulz; starts as Muon)": "metrics_general_muon.jsonl",
        "general, orthogonalize=False (starts as RMS-normalised Adam)": "metrics_general_rms.jsonl",
        "mlp from l2o-mlp-general (shipped as l2o-mlp-general-pes)": "metrics_mlp_pes.jsonl"}


def main(argv):
  runs, output = RUNS, os.path.join(HERE, "meta_training.png")
  if len(argv) > 1:
    output, runs = argv[1], {label: os.path.abspath(path) for label, path in
                             (arg.split("=", 1) for arg in argv[2:])}
  fig, (ax_val, ax_meta) = plt.subplots(1, 2, figsize=(11, 4))
  for label, name in runs.items():
    with open(os.path.join(HERE, name), encoding="utf-8") as f:
      records = [json.loads(line) for line in f]
    val = [(r["step"], r["validation_loss"]) for r in records if "validation_loss" in r]
    meta = [(r["step"], r["meta_loss"]) for r in records if "meta_loss" in r]
    ax_val.plot(*zip(*val), marker="o", label=label)
    ax_meta.plot(*zip(*meta), alpha=0.6, label=label)
  ax_val.set(xlabel="meta-step", ylabel="validation: mean loss over 1,000 steps, 8 problems",
             title="Validation (lower is better)")
  ax_meta.set(xlabel="meta-step", ylabel="PES meta-loss (mean over particles)", title="Meta-loss")
  ax_val.set_yscale("log")
  ax_meta.set_yscale("log" if all(v > 0 for line in ax_meta.lines for v in line.get_ydata())
                     else "symlog")  # (a log_ratio meta-loss is negative)
  ax_val.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(output, dpi=110)


if __name__ == "__main__":
  main(sys.argv)
