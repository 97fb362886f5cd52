# Issue 22: gps-mnist's policy class (gps_general, step_scale 0.003) on gps-mnist's problem, meta-trained by BPTT and by PES.
cd /work/wt/pes21
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=/work/wt/pes21
PC='{"activation": "relu", "batch_size": 64, "hidden_sizes": [48, 48], "horizon": 400, "init_scale": "glorot", "projection_dim": 48, "seed": 0}'
COMMON="--rule=gps_general --rule_config={\"step_scale\":0.003} --problem=mnist_mlp --validation_problems=4 --intra_op_threads=1 --inter_op_threads=1 --seed=0"
if [ "$1" = bptt ]; then
  exec nice -n 5 /work/main/.venv/bin/python -m scripts.meta_train --trainer=bptt $COMMON --problem_config="$PC" --unroll_length=20 --validation_every=200 --log_every=50 --save_dir=/work/runs/cmp22/bptt "${@:2}"
else
  exec nice -n 5 /work/main/.venv/bin/python -m scripts.meta_train --trainer=pes $COMMON --problem_config="$PC" --unroll_length=50 --min_horizon=400 --max_horizon=400 --num_pairs=8 --sigma=0.01 --meta_learning_rate=3e-4 --meta_clipnorm=0 --num_steps=3000 --validation_every=100 --validation_horizon=400 --log_every=10 --save_dir=/work/runs/cmp22/pes "${@:2}"
fi
