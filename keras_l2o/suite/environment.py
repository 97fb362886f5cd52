"""What a suite run's numbers depend on besides its seed: code, library versions, threads.

With the same seed, a run's losses are bit-identical when its code, TensorFlow,
Keras and NumPy, and its TensorFlow thread counts are the same, whatever the
machine's load. Measured: `friedman_mlp_silu` with `l2o-mlp-general` (2,000
steps) in three processes, two at 1 thread and one at 2, under a load average
of 5, gave one curve to the last bit; `mnist_conv` in two processes at once at 2
threads (a test) gives one curve. Two things do change the numbers:

* the thread count: oneDNN's convolutions split their sums by thread, so
  `mnist_conv` (200 steps) at 1 and at 2 intra-op threads first differs in the
  7th digit at step 30 (AdamW) and 20 (`l2o-mlp-general`), and the
  difference grows; with oneDNN off (`TF_ENABLE_ONEDNN_OPTS=0`) Eigen's
  convolutions differ too (from step 15); `markov_text_transformer` agreed at
  both counts. Bit-identity across thread counts is therefore not on offer:
  the suite fixes the count (`--suite_threads`, default 1) and records it;
* the code: a change to a learned optimizer's arithmetic, even a clip that
  leaves every value the same, can move a float's last bit; training amplifies
  it over thousands of steps. This, not the machine's load, is why two quick
  runs of one command (one loaded, one quiet) disagreed on `l2o-mlp-general`
  (all 227 baseline runs agreed to the bit): the loaded run used the library
  code of commit 1ced02e, the quiet one the code after later merges, and each
  code version reproduces its own run's curve bit for bit.

`describe()` records those inputs with every run; `keras_l2o.suite.RunStore`
reuses a stored run only when they match, so an evaluation never mixes runs of
two code versions or thread counts.

Example:

>>> from keras_l2o.suite import environment
>>> sorted(environment.describe())
['code', 'inter_op_threads', 'intra_op_threads', 'keras', 'numpy', 'tensorflow']
"""

import functools
import hashlib
import os

import keras
import numpy as np
import tensorflow as tf

# Suite modules that only tune, store, score or report runs: editing them changes no run's
# numbers, so they are left out of the code fingerprint (a stored run stays reusable).
_SOURCES = (".py", ".cc", ".h", ".json", ".npz")
_NOT_IN_RUNS = frozenset({"__init__.py", "environment.py", "metrics.py", "plots.py",
                          "protocol.py", "report.py", "split.py", "store.py", "summary.py",
                          "tuning.py"})


def _files(root):
  for directory, subdirectories, files in os.walk(root):
    subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(("__", ".")))
    for name in sorted(files):
      if not name.endswith(_SOURCES):  # not build products (.so built from the .cc), caches
        continue
      relative = os.path.relpath(os.path.join(directory, name), root)
      if os.path.dirname(relative) == "suite" and name in _NOT_IN_RUNS:
        continue
      yield relative


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
  """A hash of the `keras_l2o` files a run executes (sources, kernel sources, pretrained files).

  Returns:
    16 hex digits; they change when any such file changes.
  """
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  digest = hashlib.sha256()
  for relative in _files(root):
    digest.update(relative.encode("utf-8") + b"\0")
    with open(os.path.join(root, relative), "rb") as f:
      digest.update(f.read())
  return digest.hexdigest()[:16]


def describe() -> dict:
  """The inputs besides the seed that a run's numbers depend on, in this process.

  Returns:
    A dict: `code` (`code_fingerprint()`), the `tensorflow`, `keras` and `numpy`
    versions, and TensorFlow's `intra_op_threads` / `inter_op_threads` settings
    (0: TensorFlow's own choice, the machine's cores).
  """
  return {"code": code_fingerprint(), "tensorflow": tf.__version__, "keras": keras.__version__,
          "numpy": np.__version__,
          "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}


def differences(stored, current) -> dict:
  """`{key: (stored value, current value)}` for every key on which two descriptions differ
  (a record stored without a description differs on every key)."""
  stored = stored or {}
  return {k: (stored.get(k), current.get(k)) for k in sorted(set(stored) | set(current))
          if stored.get(k) != current.get(k)}
