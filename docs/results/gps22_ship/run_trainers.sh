#!/bin/sh
# Issue 22: gps_general (step_scale 0.003) meta-trained by BPTT and by PES on gps-mnist's problem, then both on
# the suite at test seed 0 next to the re-shipped (GPS-trained) gps-mnist. Run from the repository root.
# BPTT: 3,000 meta-steps (4 min 24 s); PES: 1,500 meta-steps with 400-step trajectories (run as 600, then
# --resume --num_steps=1500); GPS's 20 iterations took 25 min 44 s.
set -e
PY=${PY:-.venv/bin/python}
PROBLEM='{"activation": "relu", "batch_size": 64, "hidden_sizes": [48, 48], "horizon": 400, "init_scale": "glorot", "projection_dim": 48, "seed": 0}'
COMMON="--rule=gps_general --rule_config={\"step_scale\":0.003} --problem=mnist_mlp --learning_rate=1.0 --seed=0 \
  --intra_op_threads=1 --inter_op_threads=1"
$PY -m scripts.meta_train --trainer=bptt $COMMON --problem_config="$PROBLEM" --num_steps=3000 \
  --validation_every=100 --save_dir=runs/gps22-bptt-general
$PY -m scripts.meta_train --trainer=pes $COMMON --problem_config="$PROBLEM" --num_steps=1500 --min_horizon=400 \
  --max_horizon=400 --validation_every=50 --save_dir=runs/gps22-pes-general
$PY -m scripts.evaluate --suite=general --suite_seeds=1 --suite_baselines= --suite_threads=1 \
  --optimizers=runs/gps22-bptt-general/best,runs/gps22-pes-general/best --output_dir=runs/gps22_trainers
mkdir -p docs/results/gps22_ship/trainers
cp runs/gps22_trainers/results.json runs/gps22_trainers/report.md docs/results/gps22_ship/trainers/
$PY docs/results/gps22_ship/compare_trainers.py > docs/results/gps22_ship/trainers_compare.md
