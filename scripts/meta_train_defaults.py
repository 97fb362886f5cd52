"""Per-problem defaults of `keras-l2o-meta-train` for the flags a user did not set.

A module of data without flags, so that `scripts.benchmark` measures the
meta-training setups exactly as `keras-l2o-meta-train` runs them.
"""

PROBLEM_DEFAULTS = {
    # "bptt": {"intra_op_threads": 1}: one thread inside each op (ops still run side by side);
    # on 2 cores the quadratic lstm meta-gradient is 1.2x faster and the meta-parameters are
    # bit-identical, as on mnist_mlp. conv rounds differently with it, so it keeps TensorFlow's
    # pools (docs/PERFORMANCE.md).
    "quadratic": {"problem_config": {"num_quadratics": 128}, "num_steps": 1000,
                  "bptt": {"intra_op_threads": 1},
                  "validation_every": 100, "validation_problems": 4},
    # With --trainer=gps (rule gps_lstm): Li & Malik's P2 net, 48-48-10 ReLU on MNIST
    # projected to 48 dimensions, batch 64, horizon 400.
    "mnist_mlp": {"num_steps": 1000, "validation_every": 100, "validation_problems": 4,
                  "bptt": {"intra_op_threads": 1},
                  "gps": {"num_steps": 20, "validation_every": 1, "problem_config": {
                      "hidden_sizes": [48, 48], "activation": "relu", "batch_size": 64,
                      "horizon": 400, "projection_dim": 48, "init_scale": "glorot"}}},
    "digits_mlp": {"num_steps": 1000, "validation_every": 100, "validation_problems": 4},
    "conv": {"num_steps": 500, "validation_every": 100, "validation_problems": 4},
    # 64x64 style transfer (issue 23): one thread per op keeps a run on one core.
    "neural_art": {"num_steps": 1200, "validation_every": 100, "validation_problems": 4,
                   "bptt": {"intra_op_threads": 1, "inter_op_threads": 1}},
    # Li & Malik's problems; a trainer's own entry overrides (GPS counts iterations). Both GPS
    # trainers train on 20 problems here (GroupGPSConfig's own default, 2, is for MNIST nets):
    # with 2, gps_lstm on logistic regression failed for 5 of 8 seeds (docs/RESULTS.md).
    "logistic_regression": {"num_steps": 1000, "validation_every": 50, "validation_problems": 16,
                            "gps": {"num_steps": 10, "validation_every": 1,
                                    "gps_config": {"num_conditions": 20}}},
    "robust_linear_regression": {"num_steps": 1000, "validation_every": 50,
                                 "validation_problems": 16,
                                 "gps": {"num_steps": 10, "validation_every": 1,
                                         "gps_config": {"num_conditions": 20}}},
    "two_layer_net": {"num_steps": 1000, "validation_every": 50, "validation_problems": 16,
                      "gps": {"num_steps": 10, "validation_every": 1,
                              "gps_config": {"num_conditions": 20}}},
}


def problem_default(problem: str, trainer, name: str, fallback=None):
  """The default of setting `name` for one problem under `trainer`.

  The trainer's own entry of the problem (e.g. `PROBLEM_DEFAULTS["mnist_mlp"]["gps"]`)
  overrides the problem's general one; `fallback` where neither has it.

  Args:
    problem: one problem name.
    trainer: a trainer name, or None for the problem's general entry only.
    name: the setting (`num_steps`, `problem_config`, `gps_config`, ...).
    fallback: the value when the problem sets none.
  """
  entry = PROBLEM_DEFAULTS.get(problem, {})
  own = entry.get(trainer, {}) if trainer is not None else {}
  return own[name] if name in own else entry.get(name, fallback)


def threads(problem: str, trainer: str) -> dict:
  """TensorFlow's thread-pool sizes `keras-l2o-meta-train` uses by default.

  Args:
    problem: a problem name, or a comma list (a mixture).
    trainer: `"bptt"` or `"gps"`.

  Returns:
    `{"intra_op_threads": ..., "inter_op_threads": ...}`: the problem's entry
    for the trainer, shared by every component of a mixture; 0 (TensorFlow's
    choice) where there is none or the components disagree.
  """
  names = [n.strip() for n in problem.split(",") if n.strip()]
  values = {}
  for name in ("intra_op_threads", "inter_op_threads"):
    found = {PROBLEM_DEFAULTS.get(n, {}).get(trainer, {}).get(name, 0) for n in names}  # (trainer entries only)
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
