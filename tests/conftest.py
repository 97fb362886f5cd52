"""pytest set-up shared by every test: the environment the tests run in.

pytest loads this file before it imports any test module, so the variables
below are set before TensorFlow is first imported (TensorFlow reads its C++
log level once, at import). Bazel runs each test file as a plain script
without pytest: its `py_test` targets set the same variables through their
`env` attribute (BUILD). Subprocesses started by the tests inherit them.
"""

import os

# TensorFlow's C++ start-up chatter (oneDNN notes, cuInit) hides the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
