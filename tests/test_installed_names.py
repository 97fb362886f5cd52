"""A wheel of this repository installs only the project's own top-level names, and they work.

The repository's top-level `trainers/` and `scripts/` install as
`keras_l2o_meta.trainers` and `keras_l2o_meta.scripts` (setup.py's
`package_dir`). The same files work under both names because each package
imports its own modules relatively and the scripts reach the trainers only
through `scripts.trainers_module`; the import rules are checked on the sources
here, and the wheel is built (about 10 s), unpacked outside the checkout and run.
"""

import ast
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import tensorflow as tf


def _checkout() -> str:
  """The folder holding setup.py above this file (wherever in tests/ the file lives)."""
  folder = os.path.dirname(os.path.abspath(__file__))
  while not os.path.exists(os.path.join(folder, "setup.py")):
    if os.path.dirname(folder) == folder:
      raise FileNotFoundError(f"No setup.py in any folder above {__file__}.")
    folder = os.path.dirname(folder)
  return folder


_REPO = _checkout()

# What a wheel may put into site-packages (besides its own .dist-info folder).
_ALLOWED_TOP_LEVEL = ["keras_l2o", "keras_l2o_meta"]
# Names the modules of trainers/, scripts/ and keras_l2o/ must not import absolutely.
_OWN_PACKAGES = ("trainers", "scripts", "keras_l2o_meta")
_RENAMED = {"trainers": "keras_l2o_meta/trainers", "scripts": "keras_l2o_meta/scripts"}
_SOURCES = ("setup.py", "README.md", "keras_l2o", "trainers", "scripts")
_TINY_RUN = ["--rule=mlp", '--rule_config={"hidden_size": 2}', "--problem=quadratic",
             '--problem_config={"num_quadratics": 2}', "--num_steps=2", "--unroll_length=5",
             "--horizon=10", "--validation_every=2", "--validation_problems=1"]


def build_wheel(repo: str, out_dir: str) -> str:
  """Builds the wheel of the checkout `repo` into `out_dir`, offline; returns its path.

  It builds from a copy of the sources, so the checkout gets no `build/` or
  `.egg-info` folder (and parallel tests do not race on them).
  """
  source = os.path.join(out_dir, "source")
  os.makedirs(source)
  for name in _SOURCES:
    path = os.path.join(repo, name)
    if os.path.isdir(path):
      shutil.copytree(path, os.path.join(source, name),
                      ignore=shutil.ignore_patterns("__pycache__", "*.so", ".built"))
    else:
      shutil.copy(path, source)
  result = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
       "--disable-pip-version-check", "-q", "-w", out_dir, source],
      capture_output=True, text=True, timeout=300, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"pip wheel failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
  (wheel,) = glob.glob(os.path.join(out_dir, "*.whl"))
  return wheel


def absolute_imports(folder: str, forbidden: tuple) -> list:
  """`path:line` of each import, in the modules under `folder`, of a package named in `forbidden`.

  Only absolute imports count: `from . import x` is what the rule asks for.
  """
  found = []
  for path in sorted(glob.glob(os.path.join(folder, "**", "*.py"), recursive=True)):
    with open(path, encoding="utf-8") as f:
      tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0:
        names = [node.module]
      else:
        continue
      if any(name.split(".")[0] in forbidden for name in names):
        found.append(f"{os.path.relpath(path, folder)}:{node.lineno}")
  return found


class ImportRulesTest(tf.test.TestCase):

  def test_trainers_and_scripts_import_their_own_package_relatively(self):
    # `from trainers import bptt` inside trainers/ would break under `keras_l2o_meta.trainers`.
    for folder in ("trainers", "scripts"):
      self.assertEqual(absolute_imports(os.path.join(_REPO, folder), _OWN_PACKAGES), [],
                       f"{folder}/: use `from . import x` (or `trainers_module` for the trainers)")

  def test_the_library_imports_neither_trainers_nor_scripts(self):
    self.assertEqual(absolute_imports(os.path.join(_REPO, "keras_l2o"), _OWN_PACKAGES), [])

  def test_the_check_finds_absolute_imports_only(self):
    folder = tempfile.mkdtemp(dir=self.get_temp_dir())
    os.makedirs(os.path.join(folder, "gps"))
    with open(os.path.join(folder, "gps", "lqr.py"), "w", encoding="utf-8") as f:
      f.write("from . import types\nimport scripts.flags\nfrom .. import base\n"
              "def f():\n  from trainers.gps import gmm\n")
    self.assertEqual(absolute_imports(folder, _OWN_PACKAGES), ["gps/lqr.py:2", "gps/lqr.py:5"])

  def test_scripts_find_the_trainers_beside_them(self):
    import scripts  # pylint: disable=g-import-not-at-top
    self.assertEqual(scripts.TRAINERS_PACKAGE, "trainers")
    self.assertEqual(scripts.trainers_module("gps.lqr").__name__, "trainers.gps.lqr")


class WheelTest(tf.test.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.folder = tempfile.mkdtemp(prefix="keras_l2o_wheel_")
    cls.wheel = build_wheel(_REPO, cls.folder)
    with zipfile.ZipFile(cls.wheel) as wheel:
      cls.names = wheel.namelist()
      cls.metadata = {os.path.basename(n): wheel.read(n).decode() for n in cls.names
                      if n.split("/")[0].endswith(".dist-info")}
      wheel.extractall(os.path.join(cls.folder, "site-packages"))

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls.folder, ignore_errors=True)
    super().tearDownClass()

  def test_only_project_names_at_the_top(self):
    top = sorted({n.split("/")[0] for n in self.names if not n.split("/")[0].endswith(".dist-info")})
    self.assertEqual(top, _ALLOWED_TOP_LEVEL)
    self.assertEqual(sorted(self.metadata["top_level.txt"].split()), _ALLOWED_TOP_LEVEL)
    # A namespace package: `keras_l2o_meta` has no module of its own that could shadow anything.
    self.assertNotIn("keras_l2o_meta/__init__.py", self.names)

  def test_every_module_of_trainers_and_scripts_is_in_the_wheel(self):
    for folder, installed in _RENAMED.items():
      sources = sorted(os.path.relpath(p, _REPO) for p in
                       glob.glob(os.path.join(_REPO, folder, "**", "*.py"), recursive=True))
      self.assertNotEmpty(sources)
      self.assertEqual(sorted(n for n in self.names if n.startswith(installed + "/")),
                       [installed + p[len(folder):] for p in sources])

  def test_console_scripts_point_into_the_installed_scripts(self):
    lines = [l for l in self.metadata["entry_points.txt"].splitlines() if " = " in l]
    scripts = dict(line.split(" = ") for line in lines)
    self.assertEqual(sorted(scripts), ["keras-l2o-benchmark", "keras-l2o-evaluate",
                                       "keras-l2o-export", "keras-l2o-meta-train"])
    for target in scripts.values():
      module = target.split(":")[0]
      self.assertTrue(module.startswith("keras_l2o_meta.scripts."), target)
      path = module.replace(".", "/")
      self.assertTrue(f"{path}.py" in self.names or f"{path}/__init__.py" in self.names, target)

  def test_the_unpacked_wheel_meta_trains_outside_the_checkout(self):
    # The console script's own code (`sys.exit(run())`), run from a folder that is not the
    # checkout, importing only the unpacked wheel; then: where each module came from, and
    # that no module named `trainers` or `scripts` was ever imported.
    site = os.path.join(self.folder, "site-packages")
    save_dir = os.path.join(self.folder, "run")
    code = (
        "import json, sys\n"
        "from keras_l2o_meta.scripts.meta_train import run\n"
        "sys.argv[0] = 'keras-l2o-meta-train'\n"
        "try:\n  run()\nexcept SystemExit as e:\n  code = e.code\n"
        "import keras_l2o, keras_l2o_meta.trainers.bptt as bptt\n"
        "print(json.dumps({'exit': code, 'files': [keras_l2o.__file__, bptt.__file__],\n"
        "  'generic': sorted(m for m in sys.modules if m.split('.')[0] in ('trainers', 'scripts'))}))\n")
    env = dict(os.environ, PYTHONPATH=site)
    result = subprocess.run([sys.executable, "-c", code, *_TINY_RUN, f"--save_dir={save_dir}"],
                            cwd=self.folder, env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    lines = result.stdout.strip().splitlines()
    self.assertEqual(json.loads(lines[-2])["steps"], 2)  # the run's summary
    report = json.loads(lines[-1])
    self.assertEqual(report["exit"], None)
    self.assertEqual([os.path.relpath(f, site) for f in report["files"]],
                     ["keras_l2o/__init__.py", "keras_l2o_meta/trainers/bptt.py"])
    self.assertEqual(report["generic"], [])
    self.assertTrue(os.path.isdir(os.path.join(save_dir, "final")))


if __name__ == "__main__":
  tf.test.main()
