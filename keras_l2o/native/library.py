"""Loads the native kernels built by `keras_l2o.native.build`, once per process."""

import functools

from absl import logging
import tensorflow as tf

from keras_l2o.native import build


@functools.lru_cache(maxsize=None)
def load(name: str):
  """The op module of kernel `name`, or None when its library is missing or does not load.

  A missing or stale library (older than its source) is logged once, with the
  command that builds it; the caller then keeps its TensorFlow path.
  """
  library = build.library_path(name)
  if build.is_stale(name):
    reason = build.unbuildable_reason()
    logging.info("Native kernel %r is not built%s; rules use TensorFlow ops. Build it with: "
                 "python -c 'from keras_l2o.native import build; build.build_all()'", name,
                 f" ({reason})" if reason else "")
    return None
  try:
    return tf.load_op_library(str(library))
  except (tf.errors.NotFoundError, OSError) as e:
    logging.warning("Native kernel %s does not load (%s); rules use TensorFlow ops.",
                    library.name, e)
    return None


def available(name: str) -> bool:
  """Whether kernel `name` is built and loaded."""
  return load(name) is not None
