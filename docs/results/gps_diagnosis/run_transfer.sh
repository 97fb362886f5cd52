#!/bin/sh
# Issue 22: the GPS-trained gps_general (run_prototype.sh's general-mnist, best iteration) on the
# suite tasks where gps-mnist failed, 400 steps each; appends to transfer.jsonl.
set -e  # a failing run stops the script (its grep finds no line)
RUNS=${RUNS:-/tmp/gps22runs}
out=docs/results/gps_diagnosis/transfer.jsonl
for task in ${TASKS:-mnist_conv friedman_mlp_silu breast_cancer_mlp_tanh}; do
  python docs/results/gps_diagnosis/diagnose.py --task=$task --optimizer=$RUNS/general-mnist \
      --steps=400 --at=1,10,100,400 2>/dev/null | grep '^{' >> $out
done
