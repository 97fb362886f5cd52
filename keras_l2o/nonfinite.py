"""What a `LearnedOptimizer` step does with gradients holding NaN or Inf.

`LearnedOptimizer(nonfinite=...)` takes one of `MODES`:

* `"skip"` (default): `apply_if_finite` applies the step only if every
  gradient is finite, on every replica (the variables, the rule's state and
  `iterations` stay untouched otherwise);
* `"zero"`: `zero_nonfinite` replaces the non-finite entries by 0;
* `"raise"`: `check_numerics` makes the step fail with an
  `InvalidArgumentError` (not under `jit_compile`).

Gradients may be dense tensors, `tf.IndexedSlices` (an embedding's) or None
(a variable without gradient).

Example:

>>> import tensorflow as tf
>>> [g.numpy().tolist() for g in zero_nonfinite([tf.constant([1.0, float("nan")])])]
[[1.0, 0.0]]
>>> bool(all_finite([tf.constant([1.0, float("inf")]), None]))
False
"""

import tensorflow as tf
from keras import ops

MODES = ("skip", "zero", "raise")


def values(gradient):
  """The tensor holding a gradient's numbers (the values of IndexedSlices)."""
  return gradient.values if isinstance(gradient, tf.IndexedSlices) else gradient


def _zero(gradient):
  if gradient is None:
    return None
  if isinstance(gradient, tf.IndexedSlices):
    finite = gradient.values
    return tf.IndexedSlices(tf.where(tf.math.is_finite(finite), finite, tf.zeros_like(finite)),
                            gradient.indices, gradient.dense_shape)
  return tf.where(tf.math.is_finite(gradient), gradient, tf.zeros_like(gradient))


def zero_nonfinite(grads) -> list:
  """The gradients with every NaN and Inf entry replaced by 0 (None stays None)."""
  return [_zero(g) for g in grads]


def all_finite(grads):
  """A boolean scalar tensor: whether every entry of every (non-None) gradient is finite."""
  flags = [tf.reduce_all(tf.math.is_finite(values(g))) for g in grads if g is not None]
  return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def check_numerics(grads, name) -> list:
  """The gradients, each checked: a NaN or Inf raises `InvalidArgumentError` naming `name`."""
  checked = []
  for i, g in enumerate(grads):
    if g is not None:
      msg = f"{name}: gradient {i} contains NaN or Inf (nonfinite='raise')"
      if isinstance(g, tf.IndexedSlices):
        g = tf.IndexedSlices(tf.debugging.check_numerics(g.values, msg), g.indices,
                             g.dense_shape)
      else:
        g = tf.debugging.check_numerics(g, msg)
    checked.append(g)
  return checked


def apply_if_finite(apply_fn, grads):
  """Calls `apply_fn(grads)` only if every gradient is finite on every replica.

  Args:
    apply_fn: applies the gradients (in replica context under a strategy).
    grads: the list of gradients.
  """
  replica_context = tf.distribute.get_replica_context()
  strategy = tf.distribute.get_strategy()
  if (tf.distribute.has_strategy() and replica_context is not None
      and not tf.__internal__.distribute.strategy_supports_no_merge_call()):
    # Strategies that need merge_call: decide in cross-replica context.
    def cross_replica(distribution, grads):
      finite = distribution.extended.call_for_each_replica(all_finite, args=(grads,))
      finite = tf.reduce_all(tf.stack(distribution.experimental_local_results(finite)))

      def fn():
        distribution.extended.call_for_each_replica(apply_fn, args=(grads,))

      ops.cond(finite, fn, lambda: None)

    replica_context.merge_call(cross_replica, args=(grads,))
    return
  finite = all_finite(grads)
  if replica_context is not None and strategy.num_replicas_in_sync > 1:
    bad = replica_context.all_reduce(tf.distribute.ReduceOp.SUM,
                                     tf.cast(tf.logical_not(finite), tf.float32))
    finite = bad == 0.0
  ops.cond(finite, lambda: apply_fn(grads), lambda: None)
