#!/bin/sh
# Meta-trains the low-memory mlp_factored rule with the command of pretrained:l2o-mlp-general
# (same mixture, objective, steps and seed) and evaluates it next to l2o-mlp-general and tuned
# Adam on the settings of docs/RESULTS.md. Run from the repository root; about 30 min on 2 cores.
set -e
OUT=docs/results/mlp_factored
RUN=${RUN:-runs/l2o-mlp-factored}
PY=${PY:-python}
[ -f "$RUN/config.json" ] || $PY -m scripts.meta_train --trainer=bptt --rule=mlp_factored \
    --problem=quadratic,digits_mlp,mnist_mlp,conv --meta_objective=log_ratio --num_steps=4000 \
    --validation_every=100 --validation_problems=8 --seed=0 --save_dir="$RUN"
OPTS="$RUN/best,pretrained:l2o-mlp-general,adam"
$PY -m scripts.evaluate --overwrite --problem=quadratic --optimizers=$OPTS --num_problems=100 \
    --output_dir=$OUT/quadratic
for setting in "mnist_mlp {}" "mnist_200x200 {\"hidden_sizes\": [200, 200], \"activation\": \"relu\"}" \
               "digits_mlp {}" "conv {}"; do
  name=${setting%% *}; config=${setting#* }
  problem=$name; [ "$name" = mnist_200x200 ] && problem=mnist_mlp
  $PY -m scripts.evaluate --overwrite --problem=$problem --problem_config="$config" --optimizers=$OPTS \
      --num_problems=100 --tuning_problems=5 --speedup_horizon_factor=3 --output_dir=$OUT/$name
done
