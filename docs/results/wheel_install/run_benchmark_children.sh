#!/bin/bash
export TF_CPP_MIN_LOG_LEVEL=2
cd /tmp/wheel_demo
. /tmp/venv_wheel/bin/activate
step() { echo; echo "\$ $*"; }
step 'keras-l2o-benchmark --quick --memory --sizes=1M --steps=3 --warmup=1 --rules=mlp --output_dir=/tmp/wheel_demo/bench_memory   # fits in child processes (python -m keras_l2o_meta.scripts.benchmark --child_spec=...)'
keras-l2o-benchmark --quick --memory --sizes=1M --steps=3 --warmup=1 --rules=mlp --output_dir=/tmp/wheel_demo/bench_memory 2>&1 | grep -v "^WARNING: All log\|^I0000" | grep -i "peak\|memory\|subprocess\|Wrote\|Error\|mlp\|Adam" | head -20
