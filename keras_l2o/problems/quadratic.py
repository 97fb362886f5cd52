"""Random quadratics f(x) = ||W x - y||^2 (Andrychowicz et al. 2016, section 3.1)."""

import numpy as np
import tensorflow as tf

from keras_l2o.problems import base

VARIANTS = ("paper", "dm_code")


class Quadratic(base.ProblemFamily):
  """10-dimensional random quadratics.

  Variants:

  * `paper`: W (d x d) and y (d) i.i.d. standard Gaussian, x0 = 0; each of the
    `num_quadratics` quadratics of a problem is an independent instance (its
    own gradient), reported as their mean.
  * `dm_code`: as in the authors' public code: W, y ~ U[0, 1), x0 ~ N(0, 0.01^2),
    and one problem is a batch of `num_quadratics` (128) quadratics whose *mean*
    is the objective, so each coordinate's gradient is that of the mean.

  Args:
    seed: family seed; problems are drawn from (seed, split, index).
    variant: `"paper"` or `"dm_code"`.
    dims: dimension d.
    num_quadratics: quadratics per problem (default 1 for `paper`, 128 for
      `dm_code`).
    horizon: default number of optimizer steps.

  Example:

  >>> from keras_l2o import problems
  >>> family = problems.get("quadratic", seed=0)
  >>> p = family.sample("test", 3)
  >>> x0 = family.init_params(p.tensors)
  >>> float(family.loss(p.tensors, x0, family.batch(p.tensors, 0))) > 0
  True
  """

  name = "quadratic"
  full_batch = True  # no minibatches: one deterministic objective

  @classmethod
  def meta_train_defaults(cls, **registered) -> dict:
    # "bptt": {"intra_op_threads": 1}: one thread inside each op (ops still run side by side);
    # on 2 cores the quadratic lstm meta-gradient is 1.2x faster and the meta-parameters are
    # bit-identical, as on mnist_mlp (docs/PERFORMANCE.md).
    return {"problem_config": {"num_quadratics": 128}, "num_steps": 1000,
            "bptt": {"intra_op_threads": 1},
            "validation_every": 100, "validation_problems": 4}

  def __init__(self, seed: int = 0, *, variant: str = "paper", dims: int = 10,
               num_quadratics: int = None, horizon: int = 100):
    if variant not in VARIANTS:
      raise ValueError(f"Argument `variant` must be one of {list(VARIANTS)}. "
                       f"Received: variant={variant!r}")
    if num_quadratics is None:
      num_quadratics = 1 if variant == "paper" else 128
    for arg, value in (("dims", dims), ("num_quadratics", num_quadratics), ("horizon", horizon)):
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"Argument `{arg}` must be a positive integer. Received: {arg}={value!r}")
    super().__init__(seed, variant=variant, dims=int(dims), num_quadratics=int(num_quadratics),
                     horizon=int(horizon))
    self.variant, self.dims, self.num_quadratics = variant, int(dims), int(num_quadratics)
    self.default_horizon = int(horizon)

  def _sample_tensors(self, split, rng, seed):
    n, d = self.num_quadratics, self.dims
    if self.variant == "paper":
      w = rng.standard_normal((n, d, d))
      y = rng.standard_normal((n, d))
      x0 = np.zeros((n, d))
    else:
      w = rng.random((n, d, d))
      y = rng.random((n, d))
      x0 = 0.01 * rng.standard_normal((n, d))
    return {"w": tf.constant(w, tf.float32), "y": tf.constant(y, tf.float32),
            "x0": tf.constant(x0, tf.float32)}

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    return ()  # deterministic objective

  def losses(self, tensors, params, batch):
    (x,) = params
    residual = tf.einsum("nij,nj->ni", tf.cast(tensors["w"], x.dtype), x) - tf.cast(
        tensors["y"], x.dtype)
    per_quadratic = tf.reduce_sum(tf.square(residual), axis=-1)
    if self.variant == "dm_code":
      return tf.reduce_mean(per_quadratic)[None]
    return per_quadratic
