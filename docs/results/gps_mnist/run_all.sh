#!/bin/sh
# Issue 6's evaluations (docs/results/gps_mnist/README.md): run from the repository root after
# runs/bptt-lstm-p2 exists. About 10 minutes per setting on 2 cores. The GPS policy evaluated here was
# shipped as gps-mnist until issue 22's re-ship; it is now gps-mnist-lstm (the same files), so a rerun
# names its rows pretrained:gps-mnist-lstm.
set -e
PY=${PY:-.venv/bin/python}
OUT=docs/results/gps_mnist
OPTIMIZERS=pretrained:gps-mnist-lstm,runs/bptt-lstm-p2/best,sgd,momentum,adam,rmsprop,adagrad
eval_one() {  # $1: output name, $2: problem_config
  $PY -m scripts.evaluate --overwrite --problem=mnist_mlp --horizon=800 --num_problems=50 \
    --tuning_problems=5 --grid=0.001,0.003,0.01,0.03,0.1,0.3,1,3 --speedup_horizon_factor=1 \
    --optimizers=$OPTIMIZERS --problem_config="$2" --output_dir=$OUT/$1 --title="$1"
}
NET='"hidden_sizes":[48,48],"activation":"relu","init_scale":"glorot","seed":0'
P2='"batch_size":64,"horizon":400,"projection_dim":48,"activation":"relu","init_scale":"glorot","seed":0'
eval_one mnist_800 "{$P2,\"hidden_sizes\":[48,48]}"
eval_one mnist_200x200 "{$P2,\"hidden_sizes\":[200,200]}"
eval_one mnist_batch10 "{\"batch_size\":10,\"horizon\":400,\"projection_dim\":48,\"activation\":\"relu\",\"init_scale\":\"glorot\",\"seed\":0,\"hidden_sizes\":[48,48]}"
for dataset in digits breast_cancer wine; do
  eval_one $dataset "{\"dataset\":\"$dataset\",\"batch_size\":64,$NET}"
done
$PY $OUT/rank.py $OUT/*/results.json > $OUT/ranks.md
