"""`keras-l2o-meta-train --resume`: the saved settings, and flags that would change them.

A resumed run continues with the settings it started with (`config.json`'s
`settings`, read through `keras_l2o.run_directory.saved_settings`). Arguments
not given take the saved values (`saved_values`; FLAGS are left as parsed); a given flag that differs
from its saved value is refused, naming the flag, the saved and the given
value, except `RESUME_MAY_CHANGE` (how long to train, how often to log or
checkpoint, thread pools), which do not change the numbers the run computes.
Reads only flags and JSON: the command line calls it before TensorFlow starts.
"""

import json
import os

from absl import app
from absl import flags

from keras_l2o import run_directory
from keras_l2o import run_lock

FLAGS = flags.FLAGS

# The command line's flags besides the trainers' configuration fields (scripts.config_flags)
# that a run records in config.json's `settings`; and the strategy's.
RUN_FLAGS = ("trainer", "rule", "rule_config", "problem", "problem_config", "data_path",
             "init_from")
STRATEGY_FLAGS = ("strategy", "num_cpu_devices")
RESUME_MAY_CHANGE = ("num_steps", "patience", "log_every", "checkpoint_every",
                     "intra_op_threads", "inter_op_threads")
# Saved entries that are not flags of this run's settings (the strategy is
# checked against the checkpoint by the trainer).
_NOT_COMPARED = ("save_dir", "resume", "strategy", "num_cpu_devices")
_JSON_FLAGS = ("rule_config", "problem_config", "gps_config")


def recorded_settings(args, settings, names, threading) -> dict:
  """config.json's `settings` and `problem` entries: the arguments `names` as resolved.

  Args:
    args: the run's arguments (`meta_train.run_arguments`).
    settings: `meta_train.resolve_settings`'s result (rule, problem config, step count).
    names: the arguments the trainer reads.
    threading: the thread-pool sizes in use.

  Returns:
    `{"settings": ..., "problem": ...}`, what `--resume` reads back.
  """
  values = {name: getattr(args, name) for name in names}
  values.update(threading, rule=settings["rule"], problem_config=settings["problem_config"],
                num_steps=settings["num_steps"])
  return {"settings": values,
          "problem": {"name": args.problem, "config": settings["problem_config"]}}


def check_save_dir(save_dir, resume) -> bool:
  """Refuses a directory that cannot hold this run; returns whether there is a run to resume.

  Raises:
    app.UsageError: `save_dir` is a file; `--resume` without a run in it; a
      run in it without `--resume`; a non-empty directory without a run.
  """
  if os.path.exists(save_dir) and not os.path.isdir(save_dir):
    raise app.UsageError(f"--save_dir={save_dir} is a file, not a directory.")
  has_run = run_directory.has_config(save_dir)
  if resume and not has_run:
    where = "does not exist" if not os.path.exists(save_dir) else "holds no meta-training run"
    raise app.UsageError(f"--resume: --save_dir={save_dir} {where}; there is nothing to resume "
                         "(drop --resume to start a new run).")
  if has_run and not resume:
    running = run_lock.holder(save_dir)
    state = f" (in use by {run_lock.describe(running)})" if running is not None else ""
    raise app.UsageError(f"--save_dir={save_dir} already holds a meta-training run{state}. Pass "
                         "--resume to continue it, or choose another --save_dir (nothing was "
                         "overwritten).")
  others = [n for n in os.listdir(save_dir)
            if n != run_directory.LOCK_FILE] if os.path.isdir(save_dir) else []
  if not has_run and others:
    raise app.UsageError(f"--save_dir={save_dir} exists, is not empty and holds no run; choose "
                         "an empty or new directory.")
  return has_run


def saved_settings(save_dir) -> dict:
  """The `settings` of the run in `save_dir`; app.UsageError for a damaged config.json."""
  try:
    return run_directory.saved_settings(save_dir)
  except ValueError as e:
    raise app.UsageError(f"--resume: {e}") from None


def _parsed(name, value):
  if name in _JSON_FLAGS and isinstance(value, str):
    try:
      return json.loads(value)
    except json.JSONDecodeError as e:
      raise app.UsageError(f"--{name} is not valid JSON ({e}). Received: {value!r}") from None
  return value


def _differs(given, saved) -> bool:
  """Whether `given` disagrees with `saved`; a given dict need only agree on its own keys."""
  if isinstance(given, dict) and isinstance(saved, dict):
    return any(key not in saved or _differs(value, saved[key]) for key, value in given.items())
  return given != saved


def _shown(value) -> str:
  return value if isinstance(value, str) else json.dumps(value)


def check_conflicts(save_dir, saved: dict) -> None:
  """Raises app.UsageError for the first given flag that would change the saved run."""
  for name in sorted(saved):
    if name in _NOT_COMPARED or name in RESUME_MAY_CHANGE or name not in FLAGS:
      continue
    if not FLAGS[name].present:
      continue
    given, value = _parsed(name, FLAGS[name].value), _parsed(name, saved[name])
    if _differs(given, value):
      raise app.UsageError(
          f"--{name}={_shown(FLAGS[name].value)} conflicts with the run in {save_dir}, which was "
          f"started with --{name}={_shown(saved[name])}. A resumed run keeps its settings; only "
          f"{', '.join('--' + n for n in RESUME_MAY_CHANGE)} may change. Drop the flag, or "
          "start a new run in another --save_dir.")


def saved_values(saved: dict, names) -> dict:
  """The saved values of the arguments `names` that were not given on the command line.

  FLAGS are not changed: the run reads its arguments from
  `meta_train.run_arguments`. A JSON flag's saved object is returned as its
  JSON text; a run saved before `native_kernels` existed ran on TensorFlow
  ops and continues so.
  """
  values = {}
  for name, value in saved.items():
    if name in names and name not in _NOT_COMPARED and not FLAGS[name].present:
      values[name] = json.dumps(value) if isinstance(value, dict) else value
  if "native_kernels" in names and "native_kernels" not in saved and not FLAGS[
      "native_kernels"].present:
    values["native_kernels"] = False  # started before the native kernels: on TensorFlow ops
  return values
