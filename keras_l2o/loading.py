"""`keras_l2o.load`: one entry point for every saved form of a learned optimizer."""

from keras_l2o import export as export_lib


def load(path, which: str = "final"):
  """Loads a learned optimizer as a `keras_l2o.LearnedOptimizer`.

  Args:
    path: a SavedModel written by `LearnedOptimizer.export` /
      `keras-l2o-export`.
    which: reserved for meta-training directories (`"final"` or `"best"`).

  Returns:
    A `LearnedOptimizer`, ready for `model.compile`.

  Raises:
    ValueError: if `path` holds nothing keras_l2o wrote, or `which` is unknown.
  """
  if which not in ("final", "best"):
    raise ValueError(f"Argument `which` must be 'final' or 'best'. Received: which={which!r}")
  return export_lib.load_export(path)
