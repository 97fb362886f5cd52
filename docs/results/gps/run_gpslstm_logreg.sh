#!/bin/sh
# Issue 5, logistic regression with the coordinatewise gps_lstm: eight seeds of default
# coordinate-group GPS (20 training problems; 95-131 s each on 2 cores), evaluated together at horizons 100 and 400,
# then the per-run summary. Run from the repository root. Runs end on their best validated
# iteration (restore_best): D is the validated policy, D/last the last iteration's. (The stored
# evaluations predate restore_best: their "runs/gpslstm-logreg-sN" is the last iteration, now
# D/last, and ".../best" is what D is now.)
set -e
PY=${PY:-python}
OPTS=""
for s in 0 1 2 3 4 5 6 7; do
  [ -f runs/gpslstm-logreg-s$s/config.json ] || $PY -m scripts.meta_train --trainer=gps \
      --problem=logistic_regression --seed=$s --save_dir=runs/gpslstm-logreg-s$s
  OPTS="$OPTS,runs/gpslstm-logreg-s$s/last,runs/gpslstm-logreg-s$s"
done
for h in 100 400; do
  $PY -m scripts.evaluate --overwrite --problem=logistic_regression --optimizers=${OPTS#,},sgd,momentum \
      --horizon=$h --output_dir=docs/results/gps/logreg_gpslstm_h$h
done
for s in 0 1 2 3 4 5 6 7; do
  for which in /last ""; do
    $PY docs/results/gps/summarize.py docs/results/gps/logreg_gpslstm_h100/results.json \
        docs/results/gps/logreg_gpslstm_h400/results.json --learned=runs/gpslstm-logreg-s$s$which
  done
done
