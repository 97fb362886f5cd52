# The two commands a user needs: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.keras_l2o_installed
# The native kernels (keras_l2o/native), compiled against the venv's TensorFlow.
NATIVE := keras_l2o/native/.built
# Quiet TensorFlow's C++ start-up chatter (cuInit, oneDNN notes) in everything make runs.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test bazel-test benchmark clean

setup: $(STAMP) $(NATIVE)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

# Skipped with a warning on machines without g++ or AVX-512 (rules keep their TensorFlow paths).
$(NATIVE): $(STAMP) $(wildcard keras_l2o/native/*.cc keras_l2o/native/*.h) keras_l2o/native/build.py
	$(PY) -c "from keras_l2o.native import build; build.build_all()"
	touch $(NATIVE)

demo: setup
	$(PY) -m scripts.demo

test: setup
	$(PY) -m pytest -q -n 2 --durations=15 tests

benchmark: setup
	$(PY) -m scripts.benchmark

clean:
	rm -rf $(VENV) build dist *.egg-info demo_output keras_l2o/native/*.so $(NATIVE)

# Bazel (Debian's bazel-bootstrap 4.2, fully offline; see WORKSPACE and .bazelrc).
# The interpreter is this checkout's venv, passed as an absolute path computed here.
BAZEL ?= bazel
BAZEL_TARGETS ?= //...
BAZEL_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BAZEL_OUTPUT_USER_ROOT ?= $(if $(HOME),$(HOME)/.cache,/tmp)/bazel-keras_l2o

bazel-test: setup
	command -v $(BAZEL) >/dev/null && test -d /usr/share/bazel/rules/java || \
		(apt-get update && apt-get install -y bazel-bootstrap bazel-rules-java)
	$(BAZEL) --batch --output_user_root=$(BAZEL_OUTPUT_USER_ROOT) test \
		--jobs=$(BAZEL_JOBS) --local_test_jobs=$(BAZEL_JOBS) \
		--repo_env=KERAS_L2O_PYTHON=$(abspath $(PY)) \
		$(BAZEL_TARGETS)
