"""The `--strategy` flags every distributable script shares, and their use.

`define_strategy_flags()` adds `--strategy`, `--num_cpu_devices` and `--tpu`;
`strategy_from_flags()` builds the strategy with `keras_l2o.distribute`. Call
it first in `main`, before anything runs a TensorFlow op: splitting the CPU
into logical devices and joining a multi-worker cluster must happen before
TensorFlow initialises its devices.

`server_role()` tells a `parameter_server` process whether it is a worker or a
parameter server (which only serve, `serve_forever()`) or the chief (which
runs the training).
"""

import json
import os

from absl import flags
from absl import logging

from keras_l2o import distribute

FLAGS = flags.FLAGS


def define_strategy_flags():
  """Defines --strategy, --num_cpu_devices and --tpu (idempotent)."""
  if "strategy" in FLAGS:
    return
  flags.DEFINE_enum("strategy", "default", list(distribute.STRATEGIES),
                    "tf.distribute strategy: default (one device), mirrored (local GPUs, or "
                    "--num_cpu_devices logical CPUs), multi_worker (MultiWorkerMirroredStrategy "
                    "from TF_CONFIG), parameter_server (from TF_CONFIG, with a chief), tpu.")
  flags.DEFINE_integer("num_cpu_devices", None, "With --strategy=mirrored: mirror over this many "
                       "logical CPU devices instead of the GPUs (testing on a CPU machine).",
                       lower_bound=1)
  flags.DEFINE_string("tpu", None, "With --strategy=tpu: the TPU name or grpc:// address "
                      "(default: the TPU of this TPU VM).")


def strategy_from_flags():
  """The `tf.distribute.Strategy` the flags ask for."""
  if FLAGS.num_cpu_devices and FLAGS.strategy != "mirrored":
    raise ValueError(f"--num_cpu_devices={FLAGS.num_cpu_devices} needs --strategy=mirrored. "
                     f"Received: --strategy={FLAGS.strategy}.")
  return distribute.get_strategy(FLAGS.strategy, num_cpu_devices=FLAGS.num_cpu_devices,
                                 tpu=FLAGS.tpu)


def server_role():
  """`"chief"` for the process that trains, `"worker"`/`"ps"` for pure servers.

  Only meaningful for `--strategy=parameter_server`; every other strategy runs
  the training in every process (`"chief"`).
  """
  if FLAGS.strategy != "parameter_server":
    return "chief"
  task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
  return task.get("type", "chief") if task.get("type") in ("worker", "ps") else "chief"


def serve_forever():
  """Runs this worker / parameter-server process's gRPC server until killed."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
  logging.info("Starting %s %d of the parameter-server cluster.", resolver.task_type,
               resolver.task_id)
  server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                task_index=resolver.task_id, protocol=resolver.rpc_layer or "grpc",
                                start=True)
  server.join()
