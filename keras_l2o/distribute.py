"""One factory from a strategy name to a `tf.distribute` strategy.

keras_l2o writes no cluster code of its own: `fit` with a `LearnedOptimizer`
runs under any strategy Keras supports, and meta-trainers take a strategy.

| name | what it gives |
|---|---|
| `default` | the current (usually no-op) strategy: one device |
| `mirrored` | `MirroredStrategy` over all local GPUs, or over `num_cpu_devices` logical CPUs (for testing on a CPU machine) |
| `multi_worker` | `MultiWorkerMirroredStrategy` from the `TF_CONFIG` environment variable |
| `parameter_server` | `ParameterServerStrategy` from `TF_CONFIG` (use with a `ClusterCoordinator`) |
| `tpu` | `TPUStrategy` through a `TPUClusterResolver`; a clear error when no TPU is found |

Example:

>>> from keras_l2o import distribute
>>> strategy = distribute.get_strategy("default")
>>> strategy.num_replicas_in_sync
1
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker", "parameter_server", "tpu")


def split_cpu(num_devices: int):
  """Splits the physical CPU into `num_devices` logical devices (before TF runs any op).

  Raises:
    RuntimeError: if TensorFlow already initialised its devices with another split.
  """
  cpu = tf.config.list_physical_devices("CPU")[0]
  wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
  try:
    tf.config.set_logical_device_configuration(cpu, wanted)
  except RuntimeError as e:
    have = len(tf.config.list_logical_devices("CPU"))
    if have == num_devices:
      return
    raise RuntimeError(f"Cannot split the CPU into {num_devices} logical devices: TensorFlow has "
                       f"already initialised {have}. Call get_strategy('mirrored', "
                       "num_cpu_devices=...) before any TensorFlow op runs.") from e


def _tf_config():
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    return None
  try:
    return json.loads(raw)
  except json.JSONDecodeError as e:
    raise ValueError(f"TF_CONFIG is not valid JSON ({e}). Received: {raw!r}") from e


def get_strategy(name: str = "default", *, num_cpu_devices: int = None, tpu: str = None):
  """Returns the `tf.distribute.Strategy` called `name`.

  Args:
    name: one of `STRATEGIES`.
    num_cpu_devices: for `mirrored`, mirror over this many logical CPU devices
      instead of the local GPUs (must be called before TensorFlow runs an op).
    tpu: for `tpu`, the TPU name or address (default: a local TPU).

  Returns:
    A `tf.distribute.Strategy`.

  Raises:
    ValueError: for an unknown name, a missing `TF_CONFIG`, or no TPU found.
  """
  if name not in STRATEGIES:
    raise ValueError(f"Unknown strategy {name!r}. Valid strategies: {', '.join(STRATEGIES)}.")
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if num_cpu_devices:
      split_cpu(num_cpu_devices)
      return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(num_cpu_devices)])
    return tf.distribute.MirroredStrategy()  # all local GPUs, or the CPU
  if name in ("multi_worker", "parameter_server"):
    config = _tf_config()
    if config is None:
      raise ValueError(f"Strategy {name!r} needs the TF_CONFIG environment variable describing "
                       "the cluster (see docs); it is not set.")
    if name == "multi_worker":
      return tf.distribute.MultiWorkerMirroredStrategy()
    if "ps" not in config.get("cluster", {}):
      raise ValueError("Strategy 'parameter_server' needs a 'ps' job in TF_CONFIG's cluster. "
                       f"Received jobs: {sorted(config.get('cluster', {}))}.")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    return tf.distribute.experimental.ParameterServerStrategy(resolver)
  # tpu
  if tpu is None and not tf.config.list_logical_devices("TPU"):
    raise ValueError("No TPU found: tf.config.list_logical_devices('TPU') is empty and no TPU "
                     "name or address was given (get_strategy('tpu', tpu=...)). On a TPU VM the "
                     "TPU is local; elsewhere pass its name.")
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)
