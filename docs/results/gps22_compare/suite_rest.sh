# Issue 22: the BPTT- and PES-trained gps_general policies on Li & Malik's transfer tasks (full protocol), in the re-ship's suite store.
cd /work/wt/cmp22
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=/work/wt/cmp22
exec nice -n 5 /work/main/.venv/bin/python -m scripts.evaluate --suite=general --suite_baselines= --output_dir=/work/runs/cmp22/suite --optimizers="$1" --suite_tasks=adding_gru,count_tokens_lstm,diabetes_mlp_relu,friedman_mlp_silu,markov_text_transformer,mnist_autoencoder
