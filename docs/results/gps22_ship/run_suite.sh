#!/bin/sh
# Issue 22: the re-shipped gps-mnist on the held-out suite, full protocol (13 tasks, test seeds 0-2), next to
# Adam(1e-3) run in the same environment; the tuned baselines are read from docs/results/suite_full (same tasks,
# seeds and protocol; Adam(1e-3) is rerun here as a check that those runs are unchanged). Run from the
# repository root; 21 min 44 s on one thread.
set -e
PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/gps22_suite}
$PY -m scripts.evaluate --suite=general --optimizers=pretrained:gps-mnist --suite_baselines=adam@1e-3 \
  --suite_threads=1 --output_dir=$OUT
cp $OUT/results.json $OUT/report.md docs/results/gps22_ship/suite/
cp -r $OUT/plots docs/results/gps22_ship/suite/
$PY docs/results/gps22_ship/compare_suite.py > docs/results/gps22_ship/suite_compare.md
