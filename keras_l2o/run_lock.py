"""An exclusive lock on a meta-training run directory: one writing process at a time.

`hold(save_dir)` takes `save_dir/run.lock` with `fcntl.flock` for as long as
the `with` block runs. The operating system releases a flock when its process
ends, however it ends (an exception, SIGKILL, a crash), so a lock can never
outlive its holder. The holder writes its pid, host and start time into the
file; a second process is refused with `RunLockedError`, whose one-line
message names that holder. The file stays in the directory, emptied on
release: finding it still filled when taking the lock means its last holder
died without releasing it, which is logged as a warning and taken over.

The lock is reentrant within one process (the command line takes it before
building a trainer, the trainer's `run` takes it again). Linux and macOS only
(`fcntl`).
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import threading

from absl import logging

LOCK_FILE = "run.lock"  # (re-exported as keras_l2o.run_directory.LOCK_FILE)

_GUARD = threading.Lock()
_HELD = {}  # real path of a lock file -> [file descriptor, hold count]


class RunLockedError(RuntimeError):
  """Another process holds the lock of a run directory."""


def _read_holder(fd) -> dict:
  os.lseek(fd, 0, os.SEEK_SET)
  text = os.read(fd, 4096).decode("utf-8", errors="replace").strip()
  try:
    holder = json.loads(text) if text else {}
  except json.JSONDecodeError:
    return {"unreadable": text[:80]}
  return holder if isinstance(holder, dict) else {"unreadable": text[:80]}


def _write_holder(fd):
  holder = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
  os.ftruncate(fd, 0)
  os.lseek(fd, 0, os.SEEK_SET)
  os.write(fd, (json.dumps(holder) + "\n").encode("utf-8"))
  os.fsync(fd)


def describe(holder: dict) -> str:
  """`"process 123 on host h (since 2026-01-01T00:00:00+00:00)"` from a lock file's record."""
  if "pid" not in holder:
    return "another process (its lock file names none yet)"
  since = f" (since {holder['started']})" if holder.get("started") else ""
  return f"process {holder['pid']} on host {holder.get('host', '?')}{since}"


def acquire(save_dir) -> str:
  """Takes the lock of `save_dir` (created if missing); returns the lock file's path.

  Raises:
    RunLockedError: another process holds it.
    OSError: `save_dir` cannot be created or written.
  """
  path = os.path.join(os.fspath(save_dir), LOCK_FILE)
  with _GUARD:
    key = os.path.realpath(path)
    if key in _HELD:
      _HELD[key][1] += 1
      return path
    os.makedirs(save_dir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise RunLockedError(
          f"The run directory {save_dir} is in use by {describe(holder)}: one process writes a "
          "run at a time. Wait for it to finish, or stop it and pass --resume.") from None
    try:
      previous = _read_holder(fd)
      if previous:
        logging.warning("Took over the lock of %s from %s, which stopped without releasing it.",
                        save_dir, describe(previous))
      _write_holder(fd)
    except OSError:
      os.close(fd)  # (closing releases the flock)
      raise
    _HELD[key] = [fd, 1]
  return path


def release(save_dir):
  """Releases one `acquire` of `save_dir`'s lock; the last one empties and unlocks the file."""
  key = os.path.realpath(os.path.join(os.fspath(save_dir), LOCK_FILE))
  with _GUARD:
    entry = _HELD.get(key)
    if entry is None:
      return
    entry[1] -= 1
    if entry[1]:
      return
    del _HELD[key]
    fd = entry[0]
    try:
      os.ftruncate(fd, 0)
    finally:
      os.close(fd)


def holder(save_dir):
  """The record of the process holding `save_dir`'s lock (`{"pid", "host", "started"}`), or None.

  Probes with a non-blocking flock taken and dropped at once; a process taking
  the lock in that same instant would be refused, so call it only to explain
  an error.
  """
  path = os.path.join(os.fspath(save_dir), LOCK_FILE)
  if is_held(save_dir):
    return None
  try:
    fd = os.open(path, os.O_RDONLY)
  except OSError:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return _read_holder(fd) or {}
  finally:
    os.close(fd)
  return None


def is_held(save_dir) -> bool:
  """Whether this process holds `save_dir`'s lock."""
  key = os.path.realpath(os.path.join(os.fspath(save_dir), LOCK_FILE))
  with _GUARD:
    return key in _HELD


@contextlib.contextmanager
def hold(save_dir):
  """Holds `save_dir`'s lock for the `with` block, releasing it on any exit.

  Args:
    save_dir: a run directory; created if missing.

  Yields:
    The lock file's path.

  Raises:
    RunLockedError: another process holds the lock; the message names its pid and host.
    OSError: `save_dir` cannot be created or written.

  Example:

  >>> import tempfile
  >>> from keras_l2o import run_lock
  >>> with run_lock.hold(tempfile.mkdtemp()) as path:
  ...   path.endswith("run.lock")
  True
  """
  path = acquire(save_dir)
  try:
    yield path
  finally:
    release(save_dir)
