"""What every section measures with: wall times of calls, their statistics, peak memory."""

import resource
import sys
import time

import numpy as np


def timed_calls(fn, repeats: int, warmup: int = 0) -> list:
  """Seconds of each of `repeats` calls of `fn().numpy()`, after `warmup` untimed calls."""
  for _ in range(warmup):
    fn().numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn().numpy()
    times.append(time.perf_counter() - start)
  return times


def stats_ms(seconds) -> dict:
  """Median, 10th / 90th percentile, mean and minimum of `seconds`, in ms.

  Example:

  >>> stats_ms([0.001, 0.002, 0.003])["median_ms"]
  2.0
  """
  t = np.asarray(seconds, np.float64) * 1e3
  return {
      "median_ms": float(np.median(t)),
      "p10_ms": float(np.percentile(t, 10)),
      "p90_ms": float(np.percentile(t, 90)),
      "mean_ms": float(np.mean(t)),
      "min_ms": float(np.min(t)),
  }


def maxrss_mb() -> float:
  """This process's peak resident memory in MB.

  On Linux `VmHWM` of /proc/self/status: `ru_maxrss` survives `exec`, so a
  subprocess started by a large parent would report the parent's peak.
  """
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024  # kB
  except OSError:
    pass
  # Linux reports kilobytes (macOS bytes).
  scale = 1.0 / (1024 * 1024) if sys.platform == "darwin" else 1.0 / 1024
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
