#!/bin/sh
# Issue 22 follow-up, after the card command's meta-training (run dir $RUN): ship it as gps-mnist, then
# measure 10x its horizon and the 7 transfer tasks of the suite (full protocol: 3 test seeds, untuned, next to
# Adam(1e-3)). Run from the repository root with PYTHONPATH=$PWD.
set -e
PY=${PY:-.venv/bin/python}
RUN=${RUN:-runs/gps-mnist}
OUT=${OUT:-runs/floor22_suite}
HERE=docs/results/gps_floor22
$PY -m scripts.save_pretrained --run_dir=$RUN --name=gps-mnist --which=best
cp $RUN/config.json $HERE/gps_mnist_config.json
cp $RUN/metrics.jsonl $HERE/gps_mnist_metrics.jsonl
$PY docs/results/gps22_ship/long_horizon.py > $HERE/long_horizon.txt
$PY docs/results/gps_floor22/diagnose_magnitude.py > $HERE/diagnose_magnitude_gps-mnist_annealed.txt
$PY -m scripts.evaluate --suite=general --optimizers=pretrained:gps-mnist --suite_baselines=adam@1e-3 \
  --suite_threads=1 --output_dir=$OUT --suite_tasks=breast_cancer_mlp_tanh,classification_mlp_bn_dropout,mnist1d_conv1d,mnist_conv,moons_mlp_deep_sigmoid,topics_wide_embedding,wine_mlp_deep_gelu
mkdir -p $HERE/suite
cp $OUT/results.json $OUT/report.md $HERE/suite/
$PY docs/results/gps_floor22/compare_transfer.py > $HERE/transfer_compare.md
