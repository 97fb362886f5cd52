"""Repository rule @venv_python: a Python toolchain for the project's virtualenv.

The interpreter path has to be absolute (Bazel runs tests from the runfiles tree),
but the repository is cloned to different places (CI clones it fresh), so the path
is computed when Bazel fetches this repository, never written into a checked-in file:

  1. $KERAS_L2O_PYTHON, if set. `make bazel-test` passes
     --repo_env=KERAS_L2O_PYTHON=<abs path of $(VENV)/bin/python>.
     A relative value is taken relative to the workspace root.
  2. Otherwise <workspace root>/.venv/bin/python (what `make setup` creates).

The path is used as-is, not resolved through symlinks: .venv/bin/python is a
symlink, and Python only finds the venv (pyvenv.cfg, site-packages with
TensorFlow, ...) when started through the venv's own path.

Bazel re-runs this rule when KERAS_L2O_PYTHON changes and whenever the workspace
is at a new path (a new path means a new output base).
"""

_ENV = "KERAS_L2O_PYTHON"

def _venv_python_impl(rctx):
    workspace_root = str(rctx.path(Label("//:WORKSPACE")).dirname)
    python = rctx.os.environ.get(_ENV, "").strip()
    if not python:
        python = workspace_root + "/" + rctx.attr.default_interpreter
    elif not python.startswith("/"):
        python = workspace_root + "/" + python
    if not rctx.path(python).exists:
        fail(("Python interpreter %s not found. Run `make setup` (creates .venv) or " +
              "point Bazel at another interpreter with --repo_env=%s=/abs/path/to/python.") % (python, _ENV))
    rctx.file("WORKSPACE", 'workspace(name = "%s")\n' % rctx.name)
    rctx.template(
        "BUILD.bazel",
        rctx.attr._template,
        substitutions = {"%{PYTHON}": python},
        executable = False,
    )

venv_python = repository_rule(
    implementation = _venv_python_impl,
    attrs = {
        "default_interpreter": attr.string(
            default = ".venv/bin/python",
            doc = "Interpreter path relative to the workspace root, used when $%s is unset." % _ENV,
        ),
        "_template": attr.label(default = Label("//third_party/python_toolchain:BUILD.venv_python.tpl")),
    },
    environ = [_ENV],
    local = True,
)
