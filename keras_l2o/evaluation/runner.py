"""Loss curves of specs on problems: one traced unroll per rule, or scipy's CG / L-BFGS."""

import functools

import numpy as np
import tensorflow as tf

from keras_l2o import step as step_lib
from keras_l2o import unroll as unroll_lib
from keras_l2o.evaluation import specs as specs_lib

# Run as long as they can within the horizon: no early stop on small progress.
_SCIPY_OPTIONS = {"CG": {"gtol": 0.0}, "L-BFGS-B": {"ftol": 0.0, "gtol": 0.0}}


def _scheduled_rate(schedule, step):
  return tf.cast(step_lib.learning_rate_at(schedule, step), tf.float32)


class Runner:
  """Runs specs on problems of one family with one traced unroll per (rule, horizon).

  Under a `tf.distribute` strategy with several replicas, each replica
  unrolls a different problem (problems in groups of `num_replicas_in_sync`);
  the curves are the ones a single device computes.
  """

  def __init__(self, family, horizon: int, strategy=None):
    self.family = family
    self.horizon = int(horizon)
    self.strategy = strategy or tf.distribute.get_strategy()
    self._functions = {}
    self._replicated = {}
    self._objective = None

  def _function(self, rule, horizon, schedule=None):
    """One traced unroll per (rule, horizon, schedule); a constant rate is an argument."""
    key = (id(rule), horizon, id(schedule))
    if key not in self._functions:
      def run(meta_params, tensors, learning_rate):
        if schedule is not None:
          learning_rate = functools.partial(_scheduled_rate, schedule)
        state = unroll_lib.init_state(rule, self.family, tensors)
        losses, final, _ = unroll_lib.unroll(rule, meta_params, self.family, tensors, state,
                                             horizon, learning_rate=learning_rate)
        return tf.concat([losses, final[None]], 0)
      self._functions[key] = (rule, schedule, tf.function(run, reduce_retracing=True))
    return self._functions[key][-1]

  def _value_and_gradient(self):
    """One traced `(tensors, x) -> (f(x), grad f(x))` over the flat float64 parameters."""
    if self._objective is None:
      family = self.family

      def value_and_gradient(tensors, x):
        shapes = [p.shape for p in family.init_params(tensors)]
        with tf.GradientTape() as tape:
          tape.watch(x)
          parts = tf.split(x, [s.num_elements() for s in shapes])
          params = [tf.reshape(p, s) for p, s in zip(parts, shapes)]
          loss = family.loss(tensors, params, family.batch(tensors, tf.constant(0, tf.int64)))
        return loss, tape.gradient(loss, x)

      self._objective = tf.function(value_and_gradient, reduce_retracing=True)
    return self._objective

  def scipy_curves(self, spec: specs_lib.OptimizerSpec, problems, horizon=None) -> np.ndarray:
    """`[len(problems), horizon + 1]` objective curves of a scipy baseline (non-finite as inf)."""
    from scipy import optimize  # pylint: disable=g-import-not-at-top
    specs_lib.check_full_batch(self.family)
    horizon = horizon or self.horizon
    value_and_gradient = self._value_and_gradient()
    curves = []
    for problem in problems:

      def fun(x, tensors=problem.tensors):
        loss, grad = value_and_gradient(tensors, tf.constant(x, tf.float64))
        return float(loss), grad.numpy()

      x0 = np.concatenate([np.ravel(p.numpy()) for p in self.family.init_params(problem.tensors)])
      curve = [fun(x0.astype(np.float64))[0]]
      with np.errstate(all="ignore"):
        optimize.minimize(fun, x0.astype(np.float64), jac=True, method=spec.scipy_method,
                          callback=_recorder(curve),
                          options={"maxiter": horizon, **_SCIPY_OPTIONS[spec.scipy_method]})
      curve = curve[:horizon + 1]
      curves.append(curve + [curve[-1]] * (horizon + 1 - len(curve)))  # held after a stop
    curves = np.asarray(curves, np.float64)
    curves[~np.isfinite(curves)] = np.inf
    return curves

  def curves(self, spec: specs_lib.OptimizerSpec, problems, learning_rate=None,
             horizon=None) -> np.ndarray:
    """`[len(problems), horizon + 1]` loss curves (non-finite values as inf)."""
    horizon = horizon or self.horizon
    if spec.scipy_method is not None:
      return self.scipy_curves(spec, problems, horizon)
    lr = spec.learning_rate if learning_rate is None else learning_rate
    if lr is None:
      raise ValueError(f"{spec.name}: no learning rate (tune it first).")
    schedule = lr if callable(lr) else None
    fn = self._function(spec.rule, horizon, schedule)
    run_lr = tf.constant(0.0 if schedule else float(lr), tf.float32)
    if self.strategy.num_replicas_in_sync > 1:
      curves = self._distributed_curves(fn, spec.meta_params, problems, run_lr)
    else:
      curves = [fn(spec.meta_params, p.tensors, run_lr).numpy() for p in problems]
    curves = np.asarray(curves, np.float64)
    curves[~np.isfinite(curves)] = np.inf
    return curves

  def _distributed_curves(self, fn, meta_params, problems, learning_rate) -> list:
    """Curves of `problems`, one problem per replica at a time (the last group padded)."""
    replicas = self.strategy.num_replicas_in_sync
    if fn not in self._replicated:
      strategy = self.strategy

      def replicated(meta_params, tensors, learning_rate):
        curve = strategy.run(fn, args=(meta_params, tensors, learning_rate))
        return strategy.gather(curve, axis=0)  # [replicas * (horizon + 1)]

      self._replicated[fn] = tf.function(replicated)
    curves = []
    for start in range(0, len(problems), replicas):
      group = list(problems[start:start + replicas])
      padded = group + [group[-1]] * (replicas - len(group))
      tensors = self.strategy.experimental_distribute_values_from_function(
          lambda ctx, padded=padded: padded[ctx.replica_id_in_sync_group].tensors)
      gathered = self._replicated[fn](meta_params, tensors, learning_rate).numpy()
      curves.extend(gathered.reshape(replicas, -1)[:len(group)])
    return curves


def _recorder(curve: list):
  """A `scipy.optimize.minimize` callback appending the objective after each iteration."""

  def callback(intermediate_result):  # scipy passes an OptimizeResult for this name
    curve.append(float(intermediate_result.fun))

  return callback
