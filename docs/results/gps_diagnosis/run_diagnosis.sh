#!/bin/sh
# Issue 22 diagnosis runs (each a few seconds to a minute on one core); output: diagnosis.jsonl.
set -e
out=docs/results/gps_diagnosis/diagnosis.jsonl
: > $out
for task in mnist_conv markov_text_transformer friedman_mlp_silu diabetes_mlp_relu breast_cancer_mlp_tanh; do
  for opt in gps-mnist gps-mnist-odd adam; do
    python docs/results/gps_diagnosis/diagnose.py --task=$task --optimizer=$opt --steps=800 \
        --at=1,2,5,10,100,400,800 2>/dev/null | grep '^{' >> $out
  done
done
