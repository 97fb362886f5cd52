"""Finished runs on disk, so that a crashed or stopped evaluation resumes.

Each finished `(task, optimizer, seed, setting)` run is one JSON file under
`OUTPUT_DIR/runs/TASK/OPTIMIZER/seed=SEED/SETTING.json`, written atomically
(a temporary file, then `os.replace`): a file that exists is complete.
A store made with an `environment` (see `keras_l2o.suite.environment`) reuses a
stored run only if it was made in the same environment (code, library versions,
threads); another run is reported as missing and is rerun.
"""

import json
import os
import re

from absl import logging

from keras_l2o.suite import environment as environment_lib


def _safe(text) -> str:
  return re.sub(r"[^A-Za-z0-9_.=,@+-]", "_", str(text))


def write_json_atomic(path, value):
  """Writes `value` as JSON to `path` through a temporary file and `os.replace`."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.{os.getpid()}.tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=1, sort_keys=True, allow_nan=True)
  os.replace(tmp, path)


class RunStore:
  """Finished runs of one evaluation, keyed by task, optimizer, seed and setting.

  Example:

  >>> import tempfile
  >>> store = RunStore(tempfile.mkdtemp())
  >>> store.get("t", "adam", 0, "untuned") is None
  True
  >>> store.put("t", "adam", 0, "untuned", {"curve": [1.0]})
  >>> store.get("t", "adam", 0, "untuned")["curve"]
  [1.0]
  """

  def __init__(self, directory, environment=None):
    """A store in `directory`; with `environment` (a `describe()` dict), runs made in
    another environment are not reused."""
    self.directory = os.fspath(directory)
    self.environment = environment

  def path(self, task, optimizer, seed, setting) -> str:
    return os.path.join(self.directory, "runs", _safe(task), _safe(optimizer),
                        f"seed={int(seed)}", _safe(setting) + ".json")

  def get(self, task, optimizer, seed, setting):
    """The stored record, or None if this run has not finished."""
    path = self.path(task, optimizer, seed, setting)
    if not os.path.exists(path):
      return None
    with open(path, encoding="utf-8") as f:
      record = json.load(f)
    if self.environment is not None:
      changed = environment_lib.differences(record.get("environment"), self.environment)
      if changed:
        logging.warning("Not reusing %s: made with %s, now %s.", path,
                        {k: v[0] for k, v in changed.items()},
                        {k: v[1] for k, v in changed.items()})
        return None
    return record

  def put(self, task, optimizer, seed, setting, record):
    write_json_atomic(self.path(task, optimizer, seed, setting), record)
