# Issue 22: the BPTT- and PES-trained gps_general policies on Li & Malik's transfer tasks (full protocol), in the re-ship's suite store.
cd /work/wt/cmp22
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=/work/wt/cmp22
exec nice -n 5 /work/main/.venv/bin/python -m scripts.evaluate --suite=general --suite_baselines= --output_dir=/work/runs/cmp22/suite --optimizers="$1" --suite_tasks=breast_cancer_mlp_tanh,classification_mlp_bn_dropout,mnist1d_conv1d,mnist_conv,moons_mlp_deep_sigmoid,wine_mlp_deep_gelu,topics_wide_embedding
