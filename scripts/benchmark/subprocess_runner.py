"""Runs one benchmark configuration in a fresh process and reads back its JSON result.

Peak memory (VmHWM) is process-wide and never decreases, and TensorFlow's
thread pools are fixed once it runs an op: configurations that measure either
run as `python -m scripts.benchmark --child_spec=<json> --child_output=<path>`
(`command.child_main` runs them).
"""

import json
import os
import subprocess
import sys
import tempfile

# Imported by its repository name (`scripts.benchmark`), the checkout that holds
# `scripts/`: the child needs it on its path. Installed
# (`keras_l2o_meta.scripts.benchmark`), the child finds the package as this
# process did, and nothing is added.
CHECKOUT = (os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            if __package__ == "scripts.benchmark" else None)


def describe(spec: dict) -> str:
  """What a child spec runs, for messages.

  Example:

  >>> describe({"kind": "bptt", "rule": "lstm"})
  'BPTT with lstm'
  >>> describe({"optimizer": "mlp", "size_label": "1M"})
  'mlp at 1M'
  """
  if spec.get("kind") == "bptt":
    return f"BPTT with {spec['rule']}"
  return f"{spec['optimizer']} at {spec['size_label']}"


def run_child(spec: dict) -> dict:
  """Runs `spec` (a fit configuration, or `kind="bptt"`) in a fresh process; returns its result.

  Raises:
    RuntimeError: if the process fails, with the end of its stderr.
  """
  with tempfile.TemporaryDirectory() as tmp:
    out_path = os.path.join(tmp, "result.json")
    cmd = [sys.executable, "-m", __package__, "--child_spec=" + json.dumps(spec),
           "--child_output=" + out_path]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if CHECKOUT:
      env["PYTHONPATH"] = os.pathsep.join(p for p in (CHECKOUT, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(cmd, cwd=CHECKOUT, env=env, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0 or not os.path.exists(out_path):
      tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
      raise RuntimeError(f"Subprocess for {describe(spec)} failed (exit code "
                         f"{proc.returncode}):\n{tail}")
    with open(out_path, encoding="utf-8") as f:
      return json.load(f)
