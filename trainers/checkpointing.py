"""Resuming a run from the newest checkpoint that can be read.

`tf.train.CheckpointManager` trusts its `checkpoints/checkpoint` state file:
without it a run would restart from step 0 beside intact `ckpt-*` files, and a
truncated latest checkpoint ends in a traceback. `restore_newest_readable`
looks at the files instead: it reads every candidate in full (TensorFlow
checks each tensor's checksum), newest first, logs the ones it skips with the
reason, restores the first good one, and rewrites the state file so the
manager keeps deleting old checkpoints. It raises when checkpoints exist but
none can be read, so a run never starts over silently. Folders
`ckpt-N_temp` left by writes that were killed are removed first.
"""

import os
import re
import shutil

import tensorflow as tf
from absl import logging
# The function CheckpointManager writes its state file with (the public
# tf.compat.v1 one is deprecated and logs so).
from tensorflow.python.checkpoint import checkpoint_management  # pylint: disable=g-direct-tensorflow-import

from keras_l2o import run_directory

_CHECKPOINT_FILE = re.compile(r"^(ckpt-(\d+))\.(index|data-\d+-of-\d+)$")
_TEMP_FOLDER = re.compile(r"^ckpt-\d+_temp$")


def remove_unfinished_writes(directory) -> list:
  """Deletes the `ckpt-N_temp` folders of checkpoint writes that never finished.

  Call it only while holding the run's lock (no other process is writing).

  Returns:
    The names of the removed folders, sorted.
  """
  if not os.path.isdir(directory):
    return []
  removed = sorted(name for name in os.listdir(directory) if _TEMP_FOLDER.match(name))
  for name in removed:
    shutil.rmtree(os.path.join(directory, name), ignore_errors=True)
    logging.warning("Removed %s: a checkpoint write that was interrupted.",
                    os.path.join(directory, name))
  return removed


def candidates(directory) -> list:
  """`(step, prefix)` of every checkpoint with files in `directory`, newest first."""
  if not os.path.isdir(directory):
    return []
  found = {}
  for name in os.listdir(directory):
    match = _CHECKPOINT_FILE.match(name)
    if match:
      found[int(match.group(2))] = os.path.join(directory, match.group(1))
  return sorted(found.items(), reverse=True)


def unreadable_reason(prefix):
  """None if every tensor of checkpoint `prefix` reads back intact, else why not (one line)."""
  if not os.path.exists(prefix + ".index"):
    return "its .index file is missing"
  try:
    reader = tf.train.load_checkpoint(prefix)
    for name in reader.get_variable_to_shape_map():
      reader.get_tensor(name)
  except Exception as e:  # pylint: disable=broad-except
    # TensorFlow's reader raises DataLossError, OutOfRangeError, NotFoundError,
    # but also IndexError ("Read less bytes than requested") for a short file.
    message = getattr(e, "message", None) or str(e)
    return f"{type(e).__name__}: {message.splitlines()[0] if message else ''}".strip()
  return None


def _write_state(directory, prefixes):
  """Writes the manager's state file listing `prefixes` (oldest first), all deletable."""
  stamps = [os.path.getmtime(p + ".index") for p in prefixes]
  checkpoint_management.update_checkpoint_state_internal(
      directory, model_checkpoint_path=prefixes[-1], all_model_checkpoint_paths=prefixes,
      all_model_checkpoint_timestamps=stamps, last_preserved_timestamp=min(stamps) - 1.0,
      save_relative_paths=True)


def restore_newest_readable(checkpoint, manager, what: str = "step", repair: bool = True):
  """Restores the newest readable checkpoint of `manager`'s directory into `checkpoint`.

  Args:
    checkpoint: the `tf.train.Checkpoint` of the training state.
    manager: the `tf.train.CheckpointManager` writing into the run's
      `checkpoints/` folder. Its state file is rewritten to list the readable
      checkpoints up to the restored one.
    what: the name of the counter in messages ("meta-step", "GPS iteration").
    repair: remove unfinished writes and rewrite the state file (the process
      writing the run, holding its lock); False only reads (a non-chief worker
      restoring from the chief's files).

  Returns:
    `(manager, prefix, skipped)`: a manager of the same folder that knows the
    rewritten state (use it from now on), the restored checkpoint's path prefix
    (None when the folder holds no checkpoint at all) and `[(prefix, reason)]`
    of the newer ones that could not be read.

  Raises:
    keras_l2o.run_directory.RunDirectoryError: (a ValueError) checkpoints
      exist but none can be read (the message lists each
      with its reason).
  """
  directory = manager.directory
  if repair:
    remove_unfinished_writes(directory)
  found = candidates(directory)
  skipped = []
  for position, (step, prefix) in enumerate(found):
    reason = unreadable_reason(prefix)
    if reason is not None:
      logging.warning("Skipping checkpoint %s (%s %d): %s.", prefix, what, step, reason)
      skipped.append((prefix, reason))
      continue
    checkpoint.restore(prefix).assert_existing_objects_matched()
    if repair:
      _write_state(directory, [p for _, p in reversed(found[position + 1:])
                               if unreadable_reason(p) is None] + [prefix])
      keep = manager._max_to_keep  # pylint: disable=protected-access
      manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=keep)
    if skipped:
      logging.warning("Resuming from %s (%s %d) instead of the newer unreadable %s.", prefix,
                      what, step, ", ".join(os.path.basename(p) for p, _ in skipped))
    return manager, prefix, skipped
  if skipped:
    raise run_directory.RunDirectoryError(
        f"None of the {len(skipped)} checkpoints in {directory} can be read ("
        + "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped)
        + "). The run cannot be resumed; start it again in a new --save_dir.")
  return manager, None, []
