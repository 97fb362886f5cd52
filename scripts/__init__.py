"""The absl command lines of keras_l2o (the console scripts of setup.py).

Where the modules live. In the repository `scripts/` and `trainers/` are
top-level packages: `python -m scripts.demo` from the checkout, and the tests
and Bazel import them so. A wheel installs the same files as
`keras_l2o_meta.scripts` and `keras_l2o_meta.trainers` (setup.py), so that
site-packages gets only names of this project. Both names work because the
modules of each package import each other relatively (`from . import flags`),
and the scripts reach the trainers, the package beside this one, only through
`trainers_module`.
"""

import importlib
import types

# The trainers package beside this one: "trainers" in the repository,
# "keras_l2o_meta.trainers" when installed.
TRAINERS_PACKAGE = ".".join(__name__.split(".")[:-1] + ["trainers"])


def trainers_module(name: str) -> types.ModuleType:
  """Imports a module of the trainers package under the name it has beside this package.

  Args:
    name: the module's dotted name inside the trainers package, e.g. "bptt"
      or "gps.trainer".

  Returns:
    The module: `trainers.<name>` in the repository,
    `keras_l2o_meta.trainers.<name>` when installed.

  Example:
  >>> trainers_module("bptt").BPTTConfig.__module__ == TRAINERS_PACKAGE + ".bptt"
  True
  """
  return importlib.import_module(f"{TRAINERS_PACKAGE}.{name}")
