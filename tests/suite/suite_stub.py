"""A stub of the suite's training runs, and `keras-l2o-evaluate --suite=general` run with it.

`python -m tests.suite.suite_stub ARGS` runs the command with every training run
replaced by `StubRunner` and prints one JSON line: `{"calls": [[seed, lr], ...]}`
or `{"error": message}` for a usage error.
"""

import json
import math
import sys
from unittest import mock

import keras

from keras_l2o.suite import environment


class StubRunner:
  """A fake `run_fn`: the final loss is (log10(lr) - centre)^2 (by default centre -2.5: the
  full grid's argmin is lr=3e-3); lr >= `diverge_at` diverges (NaN). Records every
  (seed, setting) it is asked to run."""

  def __init__(self, centre=-2.5, diverge_at=0.1):
    self.calls = []
    self.centre, self.diverge_at = centre, diverge_at

  def __call__(self, spec, seed, make):
    optimizer = make(spec.horizon)
    lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate)) if not callable(
        getattr(optimizer, "_learning_rate", None)) else float(
            optimizer._learning_rate.warmup_target)  # pylint: disable=protected-access
    lr = float(f"{lr:.6g}")  # the optimizer holds it in float32
    self.calls.append((seed, lr))
    value = (math.nan if lr >= self.diverge_at else
             (math.log10(lr) - self.centre) ** 2 + 0.01 * seed)
    return {"curve": [1.0] * 19 + [value], "initial_loss": 2.0, "horizon": spec.horizon,
            "validation": {"loss": value}, "test": {"loss": value}, "stopped": False,
            "environment": environment.describe()}


def main(argv):
  """Runs the evaluate command on `argv` with stubbed training runs; prints the JSON line."""
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top

  from keras_l2o.suite import training  # pylint: disable=g-import-not-at-top
  from scripts import evaluate  # pylint: disable=g-import-not-at-top
  runner = StubRunner()
  try:
    remaining = flags.FLAGS(["keras-l2o-evaluate"] + list(argv))
    with mock.patch.object(training, "run", runner):
      evaluate.main(remaining)
  except app.UsageError as e:
    print(json.dumps({"error": str(e)}))
    return
  print(json.dumps({"calls": runner.calls}))


if __name__ == "__main__":
  main(sys.argv[1:])
