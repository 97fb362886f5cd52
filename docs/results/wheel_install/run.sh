#!/bin/bash
# The wheel in a fresh virtual environment, run from a folder outside the checkout.
# Run from the checkout after building the wheel and installing it into /tmp/venv_wheel (README.md here).
CHECKOUT=$(cd "$(dirname "$0")/../../.." && pwd)
export TF_CPP_MIN_LOG_LEVEL=2
rm -rf /tmp/wheel_demo && mkdir -p /tmp/wheel_demo && cd /tmp/wheel_demo
. /tmp/venv_wheel/bin/activate
step() { echo; echo "\$ $*"; }
step 'pip list | grep -i "keras\|tensorflow "'; pip list 2>/dev/null | grep -i "keras\|^tensorflow "
SITE=$(python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
step "cat \$SITE/keras_l2o-0.1.0.dist-info/top_level.txt"; cat $SITE/keras_l2o-0.1.0.dist-info/top_level.txt
step "ls \$SITE | grep -ix 'trainers\|scripts\|keras_l2o.*'"; ls $SITE | grep -ix 'trainers\|scripts\|keras_l2o.*'
step 'python -c "import keras_l2o, keras_l2o_meta.trainers.bptt as bptt, keras_l2o_meta.scripts.meta_train as mt; print(...)"'
python -c "import keras_l2o, keras_l2o_meta.trainers.bptt as bptt, keras_l2o_meta.scripts.meta_train as mt; print(keras_l2o.__file__); print(bptt.__file__); print(mt.__file__)" 2>&1 | grep -v "^WARNING: All log\|^I0000"
step 'python -c "import trainers"'; python -c "import trainers" 2>&1 | tail -1
step 'python -c "import scripts"'; python -c "import scripts" 2>&1 | tail -1
for s in keras-l2o-meta-train keras-l2o-evaluate keras-l2o-export keras-l2o-benchmark; do
  step "which $s; $s --help | head -3"; which $s; $s --help 2>/dev/null | head -3
done
step 'time keras-l2o-meta-train --trainer=bptt --rule=mlp --problem=quadratic --num_steps=5 --validation_every=5 --validation_problems=2 --save_dir=/tmp/wheel_demo/run_mlp'
time keras-l2o-meta-train --trainer=bptt --rule=mlp --problem=quadratic --num_steps=5 --validation_every=5 --validation_problems=2 --save_dir=/tmp/wheel_demo/run_mlp 2>&1 | grep -v "^WARNING: All log\|^I0000" | tail -3
ls /tmp/wheel_demo/run_mlp
step 'keras-l2o-evaluate --problem=quadratic --optimizers=/tmp/wheel_demo/run_mlp,adam,sgd --num_problems=3 --horizon=20 --tuning_problems=2 --grid=0.01,0.1 --output_dir=/tmp/wheel_demo/eval'
keras-l2o-evaluate --problem=quadratic --optimizers=/tmp/wheel_demo/run_mlp,adam,sgd --num_problems=3 --horizon=20 --tuning_problems=2 --grid=0.01,0.1 --output_dir=/tmp/wheel_demo/eval 2>&1 | grep -v "^WARNING: All log\|^I0000" | tail -8
ls /tmp/wheel_demo/eval
step 'keras-l2o-export --source=/tmp/wheel_demo/run_mlp --output_dir=/tmp/wheel_demo/export'
keras-l2o-export --source=/tmp/wheel_demo/run_mlp --output_dir=/tmp/wheel_demo/export 2>&1 | grep -v "^WARNING: All log\|^I0000" | tail -3
ls /tmp/wheel_demo/export
step 'keras-l2o-benchmark --quick --sizes=10k --steps=5 --warmup=2 --rules=mlp --output_dir=/tmp/wheel_demo/bench'
keras-l2o-benchmark --quick --sizes=10k --steps=5 --warmup=2 --rules=mlp --output_dir=/tmp/wheel_demo/bench 2>&1 | grep -v "^WARNING: All log\|^I0000" | tail -12
ls /tmp/wheel_demo/bench
cp "$CHECKOUT/README.md" /tmp/wheel_demo/README.md
step 'python readme.py /tmp/wheel_demo/README.md   # every ```python block of the README, as tests/test_readme.py runs them'
cp "$CHECKOUT/docs/results/wheel_install/readme.py" /tmp/wheel_demo/readme.py
time python readme.py /tmp/wheel_demo/README.md 2>&1 | grep -v "^WARNING: All log\|^I0000"
