#!/bin/sh
# Issue 22 (logistic-regression bar): the default GPS run (gps_lstm, output_scale 0.1) for
# meta-training seeds 0-7, evaluated together on the 100 test problems at horizons 100 and 400,
# then robust linear regression and the two-layer net with the default run (seed 0).
# Run from the repository root; each meta-training run is skipped when its directory is done.
set -e
PY=${PY:-python}
OUT=docs/results/gps_logreg22
SEEDS=${SEEDS:-"0 1 2 3 4 5 6 7"}
OPTS=""
for s in $SEEDS; do
  D=runs/gps-logreg22-s$s
  [ -d $D/final ] || $PY -m scripts.meta_train --trainer=gps --problem=logistic_regression \
      --seed=$s --save_dir=$D
  cp $D/metrics.jsonl $OUT/logreg_s${s}_metrics.jsonl
  OPTS="$OPTS,$D"
done
for h in 100 400; do
  $PY -m scripts.evaluate --overwrite --problem=logistic_regression --optimizers=${OPTS#,},sgd,momentum \
      --horizon=$h --output_dir=$OUT/logreg_h$h
done
for s in $SEEDS; do
  $PY docs/results/gps/summarize.py $OUT/logreg_h100/results.json $OUT/logreg_h400/results.json \
      --learned=runs/gps-logreg22-s$s
done > $OUT/summary_logreg.jsonl
for p in robust_linear_regression two_layer_net; do
  D=runs/gps-logreg22-$p
  [ -d $D/final ] || $PY -m scripts.meta_train --trainer=gps --problem=$p --save_dir=$D
  cp $D/metrics.jsonl $OUT/${p}_metrics.jsonl
  for h in 100 400; do
    $PY -m scripts.evaluate --overwrite --problem=$p --optimizers=$D,sgd,momentum --horizon=$h \
        --output_dir=$OUT/${p}_h$h
  done
  $PY docs/results/gps/summarize.py $OUT/${p}_h100/results.json $OUT/${p}_h400/results.json \
      --learned=$D > $OUT/summary_$p.jsonl
done
