"""Compiles keras_l2o's native CPU kernels against the installed TensorFlow.

The kernels are optional: without them every rule runs through TensorFlow ops
(`keras_l2o.step.rule_delta` or the XLA fast path). `make setup` (and so
`make demo` and `make test`) builds them with

    python -c "from keras_l2o.native import build; build.build_all()"

which needs g++ and an x86-64 CPU with AVX-512 (the kernel is written for its
16-lane registers and compiled with `-march=native` for the machine it runs
on). Each library is named after the TensorFlow version it was compiled
against, so a library from another TensorFlow is never loaded; it is rebuilt
when its source is newer than it.

Example (no compilation: the command the build would run):

>>> from keras_l2o.native import build
>>> cmd = build.compile_command("lstm_rule")
>>> cmd[0], "-ffp-contract=off" in cmd, cmd[cmd.index("-o") + 1].endswith(".so")
('g++', True, True)
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from absl import logging
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
# Kernel name -> its C++ source in this folder.
SOURCES = {"lstm_rule": "lstm_rule_op.cc", "lstm_cells": "lstm_cells_op.cc",
           "general_direction": "general_direction_op.cc"}
COMPILER = "g++"
# -ffp-contract=off: products and sums are rounded where the reference rounds
# them (no fused multiply-add the source does not ask for).
# -mno-avx512fp16: Eigen's half-precision AVX-512 header does not compile with g++ 12.
FLAGS = ("-std=c++17", "-shared", "-fPIC", "-O3", "-march=native", "-mno-avx512fp16",
         "-ffp-contract=off", "-Wno-deprecated-declarations")


def library_path(name: str) -> pathlib.Path:
  """Where the library of kernel `name` lives for the installed TensorFlow."""
  return HERE / f"_{name}_op-tf{tf.__version__}.so"


def source_path(name: str) -> pathlib.Path:
  if name not in SOURCES:
    raise ValueError(f"Unknown native kernel {name!r}. Known kernels: {sorted(SOURCES)}.")
  return HERE / SOURCES[name]


def unbuildable_reason():
  """None if this machine can build the kernels, else why not (a sentence)."""
  if shutil.which(COMPILER) is None:
    return f"no C++ compiler: `{COMPILER}` is not on PATH"
  try:
    flags = pathlib.Path("/proc/cpuinfo").read_text().split()
  except OSError:
    return "cannot read /proc/cpuinfo to check for AVX-512"
  if "avx512f" not in flags:
    return "the CPU has no AVX-512 (the kernels use its 16-lane registers)"
  return None


def compile_command(name: str, output=None) -> list:
  """The compiler command line that builds kernel `name` into `output`."""
  output = library_path(name) if output is None else output
  return ([COMPILER, *FLAGS, *tf.sysconfig.get_compile_flags(), str(source_path(name)), "-o",
           str(output), *tf.sysconfig.get_link_flags()])


def is_stale(name: str) -> bool:
  """Whether the library of `name` is missing or older than its source or a header of this folder."""
  library = library_path(name)
  if not library.exists():
    return True
  sources = [source_path(name), *HERE.glob("*.h")]
  return library.stat().st_mtime < max(p.stat().st_mtime for p in sources)


def build(name: str, force: bool = False) -> pathlib.Path:
  """Compiles kernel `name` unless its library is up to date; returns the library's path.

  The library is written to a temporary file and renamed into place, so a
  concurrent loader never sees half a file.

  Raises:
    RuntimeError: if the machine cannot build it (see `unbuildable_reason`) or
      the compiler fails (its output is in the message).
  """
  library = library_path(name)
  if not force and not is_stale(name):
    return library
  reason = unbuildable_reason()
  if reason:
    raise RuntimeError(f"Cannot build the native kernel {name!r}: {reason}.")
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=HERE)
  os.close(fd)
  start = time.perf_counter()
  try:
    result = subprocess.run(compile_command(name, tmp), capture_output=True, text=True,
                            check=False)
    if result.returncode:
      raise RuntimeError(f"Compiling the native kernel {name!r} failed "
                         f"(exit {result.returncode}):\n{result.stderr[-4000:]}")
    os.replace(tmp, library)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)
  logging.info("Built %s in %.1f s.", library.name, time.perf_counter() - start)
  return library


def build_all(force: bool = False) -> dict:
  """Builds every kernel this machine can build; returns {name: path or the reason it was not}.

  Never raises: a machine without g++ or AVX-512 keeps the TensorFlow paths.
  """
  results = {}
  for name in SOURCES:
    try:
      results[name] = str(build(name, force=force))
    except RuntimeError as e:
      logging.warning("%s Rules keep their TensorFlow path.", e)
      results[name] = str(e)
  return results
