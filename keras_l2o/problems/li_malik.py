"""The three problem families of Li & Malik, "Learning to Optimize" (ICLR 2017).

Every problem is a small full-batch, noiseless objective on a freshly drawn
dataset of 100 points; its parameters are ONE flat vector (a policy sees all
its coordinates at once) whose initial value is drawn per problem,
x0 ~ N(0, I). `batch()` returns the whole dataset at every step.

* `logistic_regression` (paper section 6.1): d = 3 features and a bias,
  4 parameters `[w; b]`. 50 points from each of two Gaussians with random means
  and random covariances, labelled 0 and 1 by Gaussian. Objective

      mean_i [softplus(z_i) - y_i z_i] + l2 / 2 ||w||^2,   z_i = w.x_i + b,

  (the mean log loss), with l2 = 5e-4 on the weights only (not the bias).
* `robust_linear_regression` (section 6.2): d = 3 and a bias, 4 parameters
  `[w; b]`. 25 points from each of four Gaussians with random means and
  identity covariance; the points of one Gaussian get the labels
  `y = v.x + a + noise` with their own random `v ~ N(0, I)`, `a ~ N(0, 1)`
  and i.i.d. noise. Geman-McClure objective with c = 1:

      mean_i r_i^2 / (c^2 + r_i^2),   r_i = y_i - w.x_i - b.

* `two_layer_net` (section 6.3): d = h = p = 2 (inputs, ReLU hidden units,
  classes), 12 parameters `[W (h x d, row-major); b (h); U (p x h); c (p)]`.
  25 points from each of four Gaussians with random means and covariances;
  each Gaussian gets one random class, redrawn until not every point has the
  same class. Objective: mean softmax cross-entropy of
  `U relu(W x + b) + c` plus l2 / 2 (||W||^2 + ||U||^2), l2 = 5e-4.

Choices the paper leaves open, made here: Gaussian means ~ N(0, mean_scale^2 I)
(mean_scale = 1); a "random covariance" is Q diag(s) Q^T with Q a uniformly
random rotation and eigenvalues s ~ U[0.2, 2]; the regression noise is
N(0, 0.5^2); the horizon defaults to the paper's training horizon T = 40.

Example:

>>> from keras_l2o import problems
>>> family = problems.get("logistic_regression", seed=0)
>>> problem = family.sample("test", 0)
>>> [tuple(p.shape) for p in family.init_params(problem.tensors)]
[(4,)]
>>> family.full_batch
True
"""

import numpy as np
import tensorflow as tf

from keras_l2o.problems import base

EIGENVALUE_RANGE = (0.2, 2.0)


def random_covariance(rng: np.random.Generator, dims: int) -> np.ndarray:
  """A random SPD matrix Q diag(s) Q^T: Q a Haar rotation, s ~ U[0.2, 2]."""
  q, r = np.linalg.qr(rng.standard_normal((dims, dims)))
  q = q * np.sign(np.diag(r))  # makes Q Haar-distributed
  s = rng.uniform(*EIGENVALUE_RANGE, size=dims)
  return (q * s) @ q.T


def gaussian_points(rng, mean, covariance, count) -> np.ndarray:
  """`count` points from N(mean, covariance), `[count, dims]`."""
  return mean + rng.standard_normal((count, len(mean))) @ np.linalg.cholesky(covariance).T


def _check_positive_int(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"Argument `{name}` must be a positive integer. Received: {name}={value!r}")


def _check_non_negative(name, value):
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
    raise ValueError(f"Argument `{name}` must be a non-negative number. "
                     f"Received: {name}={value!r}")


class _FullBatchFamily(base.ProblemFamily):
  """Shared parts: one flat parameter vector x0 ~ N(0, I), the whole data as the batch.

  Subclasses implement `num_parameters()`, `_sample_data(rng)` and
  `objective(x, inputs, labels)`.
  """

  full_batch = True

  @classmethod
  def meta_train_defaults(cls, **registered) -> dict:
    # Li & Malik's problems; the trainer's own entry overrides (GPS counts iterations). Both GPS
    # trainers train on 20 problems here (GroupGPSConfig's own default, 2, is for MNIST nets):
    # with 2, gps_lstm on logistic regression failed for 5 of 8 seeds (docs/RESULTS.md).
    return {"num_steps": 1000, "validation_every": 50, "validation_problems": 16,
            "gps": {"num_steps": 10, "validation_every": 1,
                    "gps_config": {"num_conditions": 20}}}

  def __init__(self, seed, *, horizon, **config):
    _check_positive_int("horizon", horizon)
    super().__init__(seed, horizon=int(horizon), **config)
    self.default_horizon = int(horizon)

  def num_parameters(self) -> int:
    raise NotImplementedError

  def _sample_tensors(self, split, rng, seed):
    inputs, labels = self._sample_data(rng)
    x0 = rng.standard_normal(self.num_parameters())
    return {"inputs": tf.constant(inputs, tf.float32), "labels": tf.constant(labels, tf.float32),
            "x0": tf.constant(x0, tf.float32)}

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    del step  # full batch: the same data at every step
    return tensors["inputs"], tensors["labels"]

  def losses(self, tensors, params, batch):
    (x,) = params
    inputs, labels = (tf.cast(t, x.dtype) for t in batch)
    return self.objective(x, inputs, labels)[None]


class LogisticRegression(_FullBatchFamily):
  """L2-regularised logistic regression on two Gaussian classes (see the module docstring).

  Args:
    seed: family seed; problems are drawn from (seed, split, index).
    dims: number of features d (the problem has d + 1 parameters).
    num_points: points per dataset, half from each class.
    l2: coefficient lambda of lambda / 2 ||w||^2 (the bias is not regularised).
    mean_scale: standard deviation of the class means.
    horizon: default number of optimizer steps.
  """

  name = "logistic_regression"

  def __init__(self, seed: int = 0, *, dims: int = 3, num_points: int = 100, l2: float = 5e-4,
               mean_scale: float = 1.0, horizon: int = 40):
    _check_positive_int("dims", dims)
    _check_positive_int("num_points", num_points)
    if num_points < 2:
      raise ValueError(f"Argument `num_points` must be at least 2 (one per class). "
                       f"Received: num_points={num_points!r}")
    _check_non_negative("l2", l2)
    _check_non_negative("mean_scale", mean_scale)
    super().__init__(seed, dims=int(dims), num_points=int(num_points), l2=float(l2),
                     mean_scale=float(mean_scale), horizon=horizon)
    self.dims, self.num_points = int(dims), int(num_points)
    self.l2, self.mean_scale = float(l2), float(mean_scale)

  def num_parameters(self) -> int:
    return self.dims + 1

  def _sample_data(self, rng):
    counts = (self.num_points // 2, self.num_points - self.num_points // 2)
    inputs, labels = [], []
    for label, count in enumerate(counts):
      mean = self.mean_scale * rng.standard_normal(self.dims)
      inputs.append(gaussian_points(rng, mean, random_covariance(rng, self.dims), count))
      labels.append(np.full(count, float(label)))
    return np.concatenate(inputs), np.concatenate(labels)

  def objective(self, x, inputs, labels):
    """The objective at the flat parameters `x = [w; b]` (a scalar)."""
    w, b = x[:-1], x[-1]
    logits = tf.linalg.matvec(inputs, w) + b
    log_loss = tf.reduce_mean(tf.nn.softplus(logits) - labels * logits)
    return log_loss + tf.constant(self.l2 / 2, x.dtype) * tf.reduce_sum(tf.square(w))


class RobustLinearRegression(_FullBatchFamily):
  """Geman-McClure robust linear regression on four Gaussian clusters (module docstring).

  Args:
    seed: family seed; problems are drawn from (seed, split, index).
    dims: number of features d (the problem has d + 1 parameters).
    num_clusters: Gaussians, each with its own linear labelling function.
    points_per_cluster: points drawn from each Gaussian.
    c: the Geman-McClure scale: loss r^2 / (c^2 + r^2).
    noise_std: standard deviation of the label noise.
    mean_scale: standard deviation of the cluster means.
    horizon: default number of optimizer steps.
  """

  name = "robust_linear_regression"

  def __init__(self, seed: int = 0, *, dims: int = 3, num_clusters: int = 4,
               points_per_cluster: int = 25, c: float = 1.0, noise_std: float = 0.5,
               mean_scale: float = 1.0, horizon: int = 40):
    for arg, value in (("dims", dims), ("num_clusters", num_clusters),
                       ("points_per_cluster", points_per_cluster)):
      _check_positive_int(arg, value)
    for arg, value in (("noise_std", noise_std), ("mean_scale", mean_scale)):
      _check_non_negative(arg, value)
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not c > 0:
      raise ValueError(f"Argument `c` must be a positive number. Received: c={c!r}")
    super().__init__(seed, dims=int(dims), num_clusters=int(num_clusters),
                     points_per_cluster=int(points_per_cluster), c=float(c),
                     noise_std=float(noise_std), mean_scale=float(mean_scale), horizon=horizon)
    self.dims, self.num_clusters = int(dims), int(num_clusters)
    self.points_per_cluster, self.c = int(points_per_cluster), float(c)
    self.noise_std, self.mean_scale = float(noise_std), float(mean_scale)

  def num_parameters(self) -> int:
    return self.dims + 1

  def _sample_data(self, rng):
    inputs, labels = [], []
    for _ in range(self.num_clusters):
      mean = self.mean_scale * rng.standard_normal(self.dims)
      points = gaussian_points(rng, mean, np.eye(self.dims), self.points_per_cluster)
      slope, intercept = rng.standard_normal(self.dims), rng.standard_normal()
      noise = self.noise_std * rng.standard_normal(self.points_per_cluster)
      inputs.append(points)
      labels.append(points @ slope + intercept + noise)
    return np.concatenate(inputs), np.concatenate(labels)

  def objective(self, x, inputs, labels):
    """The objective at the flat parameters `x = [w; b]` (a scalar)."""
    residual = labels - tf.linalg.matvec(inputs, x[:-1]) - x[-1]
    squared = tf.square(residual)
    return tf.reduce_mean(squared / (tf.constant(self.c ** 2, x.dtype) + squared))


class TwoLayerNet(_FullBatchFamily):
  """A ReLU net with one hidden layer and softmax output on four Gaussian clusters.

  Args:
    seed: family seed; problems are drawn from (seed, split, index).
    dims: input dimension d.
    hidden_units: hidden ReLU units h.
    num_classes: classes p; each cluster gets one random class.
    num_clusters: Gaussians the points are drawn from.
    points_per_cluster: points drawn from each Gaussian.
    l2: coefficient lambda of lambda / 2 (||W||^2 + ||U||^2) (biases not regularised).
    mean_scale: standard deviation of the cluster means.
    horizon: default number of optimizer steps.
  """

  name = "two_layer_net"

  def __init__(self, seed: int = 0, *, dims: int = 2, hidden_units: int = 2, num_classes: int = 2,
               num_clusters: int = 4, points_per_cluster: int = 25, l2: float = 5e-4,
               mean_scale: float = 1.0, horizon: int = 40):
    for arg, value in (("dims", dims), ("hidden_units", hidden_units),
                       ("num_clusters", num_clusters), ("points_per_cluster", points_per_cluster)):
      _check_positive_int(arg, value)
    _check_positive_int("num_classes", num_classes)
    if num_classes < 2 or num_clusters < 2:
      raise ValueError("Arguments `num_classes` and `num_clusters` must be at least 2 (two "
                       f"classes must occur). Received: num_classes={num_classes!r}, "
                       f"num_clusters={num_clusters!r}")
    _check_non_negative("l2", l2)
    _check_non_negative("mean_scale", mean_scale)
    super().__init__(seed, dims=int(dims), hidden_units=int(hidden_units),
                     num_classes=int(num_classes), num_clusters=int(num_clusters),
                     points_per_cluster=int(points_per_cluster), l2=float(l2),
                     mean_scale=float(mean_scale), horizon=horizon)
    self.dims, self.hidden_units, self.num_classes = int(dims), int(hidden_units), int(num_classes)
    self.num_clusters, self.points_per_cluster = int(num_clusters), int(points_per_cluster)
    self.l2, self.mean_scale = float(l2), float(mean_scale)

  def num_parameters(self) -> int:
    d, h, p = self.dims, self.hidden_units, self.num_classes
    return h * d + h + p * h + p

  def unpack(self, x):
    """`(W [h, d], b [h], U [p, h], c [p])` from the flat parameter vector."""
    d, h, p = self.dims, self.hidden_units, self.num_classes
    w, b, u, c = tf.split(x, [h * d, h, p * h, p])
    return tf.reshape(w, [h, d]), b, tf.reshape(u, [p, h]), c

  def _sample_data(self, rng):
    classes = rng.integers(0, self.num_classes, size=self.num_clusters)
    while len(set(classes.tolist())) < 2:  # the paper makes sure both classes occur
      classes = rng.integers(0, self.num_classes, size=self.num_clusters)
    inputs, labels = [], []
    for label in classes:
      mean = self.mean_scale * rng.standard_normal(self.dims)
      inputs.append(gaussian_points(rng, mean, random_covariance(rng, self.dims),
                                    self.points_per_cluster))
      labels.append(np.full(self.points_per_cluster, float(label)))
    return np.concatenate(inputs), np.concatenate(labels)

  def objective(self, x, inputs, labels):
    """The objective at the flat parameters `x = [W; b; U; c]` (a scalar)."""
    w, b, u, c = self.unpack(x)
    hidden = tf.nn.relu(tf.matmul(inputs, w, transpose_b=True) + b)
    logits = tf.matmul(hidden, u, transpose_b=True) + c
    xent = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(labels, tf.int32), logits)
    penalty = tf.reduce_sum(tf.square(w)) + tf.reduce_sum(tf.square(u))
    return tf.reduce_mean(xent) + tf.constant(self.l2 / 2, x.dtype) * penalty
