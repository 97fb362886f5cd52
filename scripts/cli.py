"""What the command lines share: one-line errors, number validators, output checks.

A command line's mistakes (bad flags, a run directory in use, a damaged file)
end it with one line on stderr, `<program>: error: <message>`, and exit code
1: never a traceback, never the module docstring. Errors that are bugs still
raise with their traceback.
"""

import math
import os
import sys
import tempfile

from absl import app
from absl import flags

FLAGS = flags.FLAGS


def fail(program: str, message) -> None:
  """Writes `program: error: message` as one line to stderr and exits with code 1."""
  text = " ".join(str(message).split())
  sys.stderr.write(f"{program}: error: {text}\n")
  sys.stderr.flush()
  sys.exit(1)


def run(main, program: str, expected=()):
  """`app.run(main)` with every flag or usage error reported as one line (see `fail`).

  Args:
    main: the script's `main(argv)`.
    program: the console-script name shown before the message.
    expected: more exception classes that are the user's mistake, not a bug
      (e.g. `run_lock.RunLockedError`); reported the same way.
  """

  def parse(argv):
    try:
      return FLAGS(argv)
    except flags.Error as e:
      fail(program, e)

  def guarded(argv):
    try:
      return main(argv)
    except (app.UsageError, *expected) as e:
      fail(program, e)

  app.run(guarded, flags_parser=parse)


def register_number_validator(name: str, minimum: float = 0.0, inclusive: bool = False):
  """Makes float flag `--name` accept only finite numbers > `minimum` (>= if `inclusive`)."""
  bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

  def check(value):
    if value is None:
      return True
    if not math.isfinite(value) or (value < minimum if inclusive else value <= minimum):
      raise flags.ValidationError(f"--{name} must be a finite number {bound}. Received: "
                                  f"{value!r}")
    return True

  flags.register_validator(name, check)


def finite_positive(text: str, what: str) -> float:
  """`float(text)` if it is a finite number > 0, else `app.UsageError` naming `what`."""
  try:
    value = float(text)
  except ValueError:
    raise app.UsageError(f"{what}: {text!r} is not a number.") from None
  if not math.isfinite(value) or value <= 0:
    raise app.UsageError(f"{what}: the learning rate must be a finite number > 0. Received: "
                         f"{text!r}")
  return value


def check_writable_dir(flag: str, path: str) -> None:
  """Creates directory `path` if missing and writes and deletes a probe file in it.

  Raises:
    app.UsageError: `path` is a file, or it cannot be created or written
      (checked before any work, so a run does not fail at its end).
  """
  if os.path.exists(path) and not os.path.isdir(path):
    raise app.UsageError(f"--{flag}={path} is a file, not a directory.")
  try:
    os.makedirs(path, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path, prefix=".write_check_"):
      pass
  except OSError as e:
    raise app.UsageError(f"--{flag}={path} cannot be written: {e.strerror or e}.") from None


def load_learned(entry: str):
  """The learned optimizer an argument names: `pretrained:NAME`, else a meta-training directory
  (its final result) or an export (`keras_l2o.load`).

  Raises:
    ValueError: an unknown pretrained name, or nothing keras_l2o can load at the path.
  """
  import keras_l2o  # pylint: disable=g-import-not-at-top
  if entry.startswith("pretrained:"):
    return keras_l2o.pretrained.get(entry.split(":", 1)[1])
  return keras_l2o.load(entry)
