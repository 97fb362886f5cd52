"""Per-problem defaults of `keras-l2o-meta-train` for the settings a user did not set.

The defaults live on each problem family (`ProblemFamily.meta_train_defaults`,
read through `keras_l2o.problems.meta_train_defaults`); this module looks one
setting up for a problem and a trainer, and sets TensorFlow's thread pools, so
that `scripts.benchmark` measures the meta-training setups exactly as
`keras-l2o-meta-train` runs them.
"""


def problem_default(problem: str, trainer, name: str, fallback=None):
  """The default of setting `name` for one problem under `trainer`.

  The trainer's own entry of the problem (e.g. `mnist_mlp`'s `"gps"` entry)
  overrides the problem's general one; `fallback` where neither has it.

  Args:
    problem: one problem name.
    trainer: a trainer name, or None for the problem's general entry only.
    name: the setting (`num_steps`, `problem_config`, `gps_config`, ...).
    fallback: the value when the problem sets none.
  """
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  entry = problems.meta_train_defaults(problem) if problem in problems.names() else {}
  own = entry.get(trainer, {}) if trainer is not None else {}
  return own[name] if name in own else entry.get(name, fallback)


def threads(problem: str, trainer: str) -> dict:
  """TensorFlow's thread-pool sizes `keras-l2o-meta-train` uses by default.

  Args:
    problem: a problem name, or a comma list (a mixture).
    trainer: a trainer name (`"bptt"`, `"gps"`, ...).

  Returns:
    `{"intra_op_threads": ..., "inter_op_threads": ...}`: the problem's entry
    for the trainer, shared by every component of a mixture; 0 (TensorFlow's
    choice) where there is none or the components disagree.
  """
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  names = [n.strip() for n in problem.split(",") if n.strip()]
  values = {}
  for name in ("intra_op_threads", "inter_op_threads"):
    found = {(problems.meta_train_defaults(n) if n in problems.names() else {}).get(
        trainer, {}).get(name, 0) for n in names}  # (trainer entries only)
    values[name] = found.pop() if len(found) == 1 else 0
  return values


def apply_threads(values: dict) -> dict:
  """Sets TensorFlow's thread pools to `values` (as `threads` returns); call it before
  TensorFlow runs an op.

  Returns:
    The pool sizes TensorFlow reports afterwards, in the same form.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(values["intra_op_threads"])
  tf.config.threading.set_inter_op_parallelism_threads(values["inter_op_threads"])
  return {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
          "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
