#!/bin/sh
# Issue 22 diagnosis runs (each one to a few minutes on one loaded core); appends to diagnosis.jsonl
# (remove it first for a fresh run). TASKS and OPTIMIZERS override the lists.
set -e  # a failing run stops the script (its grep finds no line)
# (The transformer was run with gps-mnist only: its other runs were cut for time.)
out=docs/results/gps_diagnosis/diagnosis.jsonl
TASKS=${TASKS:-mnist_conv markov_text_transformer friedman_mlp_silu diabetes_mlp_relu breast_cancer_mlp_tanh}
for task in $TASKS; do
  for opt in ${OPTIMIZERS:-gps-mnist gps-mnist-odd adam}; do
    python docs/results/gps_diagnosis/diagnose.py --task=$task --optimizer=$opt --steps=800 \
        --at=1,2,5,10,100,400,800 2>/dev/null | grep '^{' >> $out
  done
done
