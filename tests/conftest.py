"""pytest set-up shared by every test: the environment, and a temp directory left clean.

pytest loads this file before it imports any test module, so the variables
below are set before TensorFlow is first imported (TensorFlow reads its C++
log level once, at import). Bazel runs each test file as a plain script
without pytest: its `py_test` targets set the same variables through their
`env` attribute (BUILD), and Bazel gives each test its own temporary folder.

Under pytest, every temporary file of the run (the test processes, xdist's
workers and every command the tests start) goes into one folder of the
system's temp directory, `keras_l2o_tests_*`, through `TMPDIR`. When the last
process has exited, anything still in it is something a test, the library or
a command left behind: the run then fails, naming each entry, and the folder
is deleted, so the temp directory is as clean after the suite as before.
One exception is named, not failed: what TensorFlow deletes when a process
exits (its autograph modules, the folder of `tf.test.TestCase.get_temp_dir`)
stays behind when pytest-xdist kills a worker that takes more than 10 s to
exit, which happens on a loaded machine; it is deleted with the folder.
"""

import atexit
import os
import shutil
import sys
import tempfile

import pytest

# TensorFlow's C++ log messages (oneDNN notes, cuInit) hide the test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The folder's name in the temp directory (see the module docstring).
TEMP_PREFIX = "keras_l2o_tests_"
# What pytest itself keeps on purpose (its tmp_path folders of the last 3 runs).
_PYTEST_OWN = "pytest-of-"
# What TensorFlow deletes at a process's exit: autograph's generated modules, and the
# get_temp_dir() root, named after the main file (`<string>` for an xdist worker).
_TF_AT_EXIT = ("__autograph_generated_file", "<string>")


# A file in the folder where each process notes the entries that appeared during each test
# ("entry<TAB>test id" lines), so that a failure can say which tests to look at.
_APPEARED = ".appeared_during"


def leftovers(folder: str) -> tuple:
  """The entries of `folder` nobody removed, sorted: `(left, tensorflow_at_exit)`."""
  names = sorted(n for n in os.listdir(folder)
                 if not n.startswith(_PYTEST_OWN) and n != _APPEARED)
  at_exit = [n for n in names if n.startswith(_TF_AT_EXIT)]
  return [n for n in names if n not in at_exit], at_exit


def _check_and_remove(folder: str, exit_status: list) -> None:
  """At exit, after every other exit handler: fail the run if `folder` is not empty."""
  left, at_exit = leftovers(folder)
  during = _appeared_during(folder)
  shutil.rmtree(folder, ignore_errors=True)
  if at_exit:
    sys.stderr.write(f"\nNote: {len(at_exit)} temporary entries TensorFlow deletes at exit were "
                     f"left by a process that did not exit normally (deleted): {at_exit[:3]}...\n")
  if left:
    sys.stdout.flush()
    sys.stderr.write(f"\nFAILED: the tests left {len(left)} temporary entries behind "
                     f"(in {folder}, now deleted): {', '.join(left)}\n")
    for name in left:
      sys.stderr.write(f"  {name} appeared during: "
                       f"{', '.join(during.get(name, ['no test (start-up or exit)']))}\n")
    sys.stderr.flush()
    # A handler's exception cannot change the exit status, and this one runs last.
    os._exit(exit_status[0] or 1)  # pylint: disable=protected-access


def _appeared_during(folder: str) -> dict:
  """`{entry: [test ids]}` from the notes of `pytest_runtest_protocol`."""
  during = {}
  try:
    with open(os.path.join(folder, _APPEARED), encoding="utf-8") as f:
      for line in f:
        name, _, test = line.rstrip("\n").partition("\t")
        during.setdefault(name, []).append(test)
  except OSError:
    pass
  return during


def _redirect_temp_directory():
  """Points TMPDIR of this process and of every later child to a fresh folder."""
  folder = tempfile.mkdtemp(prefix=TEMP_PREFIX)
  os.environ["TMPDIR"] = folder
  tempfile.tempdir = folder
  return folder


_EXIT_STATUS = [0]
# Only once per run: xdist's workers inherit the controller's TMPDIR (and have this variable).
if "PYTEST_XDIST_WORKER" not in os.environ:
  # Registered before TensorFlow is imported, so it runs after TensorFlow's own exit
  # handlers (they delete its test folders and generated autograph files).
  atexit.register(_check_and_remove, _redirect_temp_directory(), _EXIT_STATUS)


def pytest_sessionfinish(session, exitstatus):
  del session  # unused
  _EXIT_STATUS[0] = int(exitstatus)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """Notes which entries of the temp folder appeared while `item` ran (in this process)."""
  del nextitem  # unused
  folder = tempfile.gettempdir()
  before = set(os.listdir(folder))
  yield
  appeared = sorted(set(os.listdir(folder)) - before - {_APPEARED})
  if appeared and os.path.basename(folder).startswith(TEMP_PREFIX):
    with open(os.path.join(folder, _APPEARED), "a", encoding="utf-8") as f:
      f.writelines(f"{name}\t{item.nodeid}\n" for name in appeared)
