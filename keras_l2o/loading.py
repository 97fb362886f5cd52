"""`keras_l2o.load`: one entry point for every saved form of a learned optimizer."""

import os

from keras_l2o import export as export_lib
from keras_l2o import run_directory


def load(path, which: str = "final"):
  """Loads a learned optimizer as a `keras_l2o.LearnedOptimizer`.

  Args:
    path: a SavedModel written by `LearnedOptimizer.export` / `keras-l2o-export`,
      or a meta-training directory written by `keras-l2o-meta-train`.
    which: for a meta-training directory, `"final"` (the run's result: the
      meta-parameters at the end of training, or for a GPS run with
      `restore_best` those of its best validated iteration), `"best"` (those
      with the best validation loss) or `"last"` (a GPS run's last iteration).

  Returns:
    A `LearnedOptimizer`, ready for `model.compile`.

  Raises:
    ValueError: if `path` holds nothing keras_l2o wrote, a damaged or crafted
      export (with the reason), or `which` is unknown or not `"final"` for an
      export.

  Example:

  >>> import tempfile, keras_l2o
  >>> path = keras_l2o.LearnedOptimizer("mlp").export(tempfile.mkdtemp())
  >>> keras_l2o.load(path).rule.name
  'mlp'
  """
  if which not in run_directory.EXPORTS:
    raise ValueError("Argument `which` must be 'final', 'best' or 'last'. Received: "
                     f"which={which!r}")
  path = os.fspath(path)
  if run_directory.is_run(path):
    exported = run_directory.export_path(path, which)
    if not export_lib.is_export(exported):
      if which == "last" and export_lib.is_export(run_directory.export_path(path, "final")):
        raise ValueError(f"The meta-training run in {path!r} has no 'last' optimizer: only GPS "
                         "runs write one; this run's 'final' is its last step.")
      raise ValueError(f"The meta-training run in {path!r} has no {which!r} optimizer yet (it is "
                       "still running, or stopped before finishing: continue it with "
                       "`keras-l2o-meta-train --resume --save_dir=...`).")
    return export_lib.load_export(exported)
  if which != "final" and export_lib.is_export(path):
    raise ValueError(f"{path!r} is an export (a single optimizer): `which={which!r}` applies to "
                     "meta-training directories only. Load it with `which='final'` (the default).")
  return export_lib.load_export(path)
