"""Every docstring example of `keras_l2o`, `trainers` and `scripts` runs, and passes.

The modules are discovered, not listed: every module of the three packages
with a `>>>` line is imported and its examples run with `doctest` (its default
options, as `doctest.testmod`). A module with `>>>` lines of which doctest
does not run every one (a `>>>` outside the docstrings it searches, say) fails
too: an example that looks runnable must run. Examples that make temporary folders
(`tempfile.mkdtemp()`) make them inside a folder removed after the module.
"""

import contextlib
import doctest
import importlib
import io
import os
import tempfile

from absl.testing import parameterized
import tensorflow as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("keras_l2o", "trainers", "scripts")


def prompt_lines(path: str) -> int:
  """Lines of the file at `path` that start (after indentation) with `>>>`."""
  with open(path, encoding="utf-8") as f:
    return sum(line.lstrip().startswith(">>>") for line in f)


def modules_with_examples() -> list:
  """Dotted names of the modules of `PACKAGES` with a line starting with `>>>`, sorted."""
  names = []
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(REPO_ROOT, package)):
      for file in files:
        path = os.path.join(folder, file)
        if file.endswith(".py") and prompt_lines(path):
          parts = os.path.relpath(path, REPO_ROOT)[:-len(".py")].split(os.sep)
          names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
  return sorted(names)


MODULES = modules_with_examples()


@contextlib.contextmanager
def _temporary_folders_inside(folder: str):
  """Makes `tempfile.mkdtemp()` and friends create their folders inside `folder`."""
  previous = tempfile.tempdir
  tempfile.tempdir = folder
  try:
    yield
  finally:
    tempfile.tempdir = previous


def run_examples(module):
  """Runs the docstring examples of `module`; returns `(failed, attempted, report)`."""
  runner = doctest.DocTestRunner(verbose=False)
  report = io.StringIO()
  for test in doctest.DocTestFinder().find(module, module.__name__, globs=dict(vars(module))):
    runner.run(test, out=report.write)
  failed, attempted = runner.summarize(verbose=False)
  return failed, attempted, report.getvalue()


class DocstringExamplesTest(tf.test.TestCase, parameterized.TestCase):

  def test_discovery_finds_modules_of_every_package(self):
    for package in PACKAGES:
      self.assertTrue(any(name.split(".")[0] == package for name in MODULES), package)
    for name in ("keras_l2o", "keras_l2o.evaluation.metrics", "keras_l2o.step_paths",
                 "trainers.bptt", "scripts.benchmark.optimizers"):
      self.assertIn(name, MODULES)

  def test_a_failing_example_is_counted(self):
    module = type(os)("broken_example", "An example that fails:\n\n>>> 1 + 1\n3\n")
    failed, attempted, report = run_examples(module)
    self.assertEqual((failed, attempted), (1, 1))
    self.assertIn("Expected:\n    3\nGot:\n    2", report)

  @parameterized.named_parameters((name.replace(".", "_"), name) for name in MODULES)
  def test_examples_run_and_pass(self, name):
    module = importlib.import_module(name)
    with tempfile.TemporaryDirectory() as folder, _temporary_folders_inside(folder):
      failed, attempted, report = run_examples(module)
    prompts = prompt_lines(module.__file__)
    self.assertGreater(attempted, 0, f"{name} has `>>>` lines but no docstring example.")
    # Each `>>>` starts one example: a prompt doctest does not see (outside the docstrings it
    # searches, e.g. in a nested function's) is an example that never runs.
    self.assertEqual(attempted, prompts, f"{name}: {prompts} `>>>` lines, {attempted} run.")
    self.assertEqual(failed, 0, f"{failed} of {attempted} examples of {name} failed:\n{report}")


if __name__ == "__main__":
  tf.test.main()
