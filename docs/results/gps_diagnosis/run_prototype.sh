#!/bin/sh
# Issue 22 prototype runs: gps_general trained by coordinate-group GPS on logistic regression
# (the default GPS run's problem, all 4 coordinates recorded) and on P2's MNIST net at a short
# horizon (100 steps, 4 iterations), then evaluated. RUNS defaults to /tmp/gps22runs.
set -e
RUNS=${RUNS:-/tmp/gps22runs}
python -m scripts.meta_train --trainer=gps --rule=gps_general --rule_config='{"step_scale": 0.1}' \
    --problem=logistic_regression --gps_config='{"coordinates_per_group": 4}' \
    --save_dir=$RUNS/general-logreg
python -m scripts.evaluate --problem=logistic_regression --optimizers=$RUNS/general-logreg,sgd \
    --horizon=100 --output_dir=$RUNS/eval_logreg_h100
python -m scripts.evaluate --problem=logistic_regression --optimizers=$RUNS/general-logreg,sgd \
    --horizon=400 --output_dir=$RUNS/eval_logreg_h400
python docs/results/gps/summarize.py $RUNS/eval_logreg_h100/results.json \
    --learned=$RUNS/general-logreg --baselines=sgd
python -m scripts.meta_train --trainer=gps --rule=gps_general --rule_config='{"step_scale": 0.01}' \
    --problem=mnist_mlp --horizon=100 --num_steps=4 --save_dir=$RUNS/general-mnist \
    --problem_config='{"hidden_sizes": [48, 48], "activation": "relu", "batch_size": 64, "horizon": 100, "projection_dim": 48, "init_scale": "glorot"}'
