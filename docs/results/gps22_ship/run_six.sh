#!/bin/sh
# Issue 22: the re-shipped gps-mnist (gps_general) on the six test settings of issue 6 (docs/results/gps_mnist),
# on the same 50 test nets and 800 steps. Only the new optimizer is run, with Adam at the learning rate issue 6
# tuned for that setting (a check that the test nets and baseline arithmetic are unchanged: its sum must equal
# issue 6's tuned-Adam sum); compare.py then ranks it among issue 6's stored rows. Run from the repository root.
set -e
PY=${PY:-.venv/bin/python}
OUT=${OUT:-docs/results/gps22_ship/six}  # a later version of gps-mnist: OUT=docs/results/gps_floor22/six
ONLY=${ONLY:-}  # a space-separated subset of the settings (e.g. to run two processes side by side)
eval_one() {  # $1: setting (issue 6's folder name), $2: issue 6's tuned Adam rate, $3: problem_config
  if [ -n "$ONLY" ] && ! echo " $ONLY " | grep -q " $1 "; then return 0; fi
  $PY -m scripts.evaluate --overwrite --problem=mnist_mlp --horizon=800 --num_problems=50 \
    --tuning_problems=5 --speedup_horizon_factor=1 --optimizers=pretrained:gps-mnist,adam@$2 \
    --problem_config="$3" --output_dir=$OUT/$1 --title="$1"
}
NET='"hidden_sizes":[48,48],"activation":"relu","init_scale":"glorot","seed":0'
P2='"batch_size":64,"horizon":400,"projection_dim":48,"activation":"relu","init_scale":"glorot","seed":0'
eval_one mnist_800 0.03 "{$P2,\"hidden_sizes\":[48,48]}"
eval_one mnist_200x200 0.01 "{$P2,\"hidden_sizes\":[200,200]}"
eval_one mnist_batch10 0.01 "{\"batch_size\":10,\"horizon\":400,\"projection_dim\":48,\"activation\":\"relu\",\"init_scale\":\"glorot\",\"seed\":0,\"hidden_sizes\":[48,48]}"
eval_one digits 0.03 "{\"dataset\":\"digits\",\"batch_size\":64,$NET}"
eval_one breast_cancer 0.03 "{\"dataset\":\"breast_cancer\",\"batch_size\":64,$NET}"
eval_one wine 0.03 "{\"dataset\":\"wine\",\"batch_size\":64,$NET}"
$PY docs/results/gps22_ship/compare_six.py $OUT > $OUT/ranks.md
