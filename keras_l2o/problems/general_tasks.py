"""`general_tasks`: small, varied meta-training tasks for the `general` rule, with augmentation.

Eight fixed tasks (`TASKS`): MLPs of several depths and widths and a small
conv net, ReLU / tanh / GELU / SiLU, batches of 16 to 128, on the offline
meta-training datasets of `keras_l2o.problems.meta_data` (none of which the
held-out suite uses). Every task is a `MetaTaskFamily` (a problem family with
fixed architecture); `GeneralTasks` cycles through them like a
`MixtureFamily`, so trainers that take mixtures (BPTT; PES) unroll each with
its own functions. Every task names its `dataset` and `architecture`, so a
test can check that the suite never trains on them.

Reparameterisation augmentation (`reparam=True`, Celo2's "global" level): each
sampled problem draws one scale s = exp(U(ln lo, ln hi)) from its seed; its
initial parameters are stored as w / s and its loss is evaluated at w * s. The
loss at initialisation is unchanged, but the optimizer sees gradients scaled by
s and parameters by 1 / s, so a rule must not depend on those scales. (For the
scale-free `general` rule, whose step has a fixed size in parameter units, it
is a random effective learning rate s * lr: with the full range [1e-3, 1e3] most
problems either barely move or diverge; `reparam_range` narrows it.)

Small training sets (`train_size_range=(lo, hi)`): each sampled problem keeps
only the first n examples of its split, with n / (split size) log-uniform in
[lo, hi] and n at least one batch. Over a few thousand steps the small ones are
fitted to zero loss and overfit, as small tabular sets do, so a held-out
meta-loss (`--meta_loss_data`) sees problems where regularising pays and
problems where it only slows fitting. Off (every example) by default.

Example:

>>> from keras_l2o import problems
>>> family = problems.get("general_tasks", seed=0)
>>> [c.name for c in family.components][:2]
['mnist8_mlp_64x32_relu_b64', 'digits_projected_mlp_32_tanh_b16']
>>> p = family.sample("train", 0)
>>> c = family.components[family.component_of(0)]
>>> 2.0 < float(c.loss(p.tensors, c.init_params(p.tensors), c.batch(p.tensors, 0))) < 2.7
True
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from keras_l2o.problems import base
from keras_l2o.problems import meta_data
from keras_l2o.problems import mixture
from keras_l2o.problems import mlp

ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.nn.tanh, "gelu": tf.nn.gelu, "silu": tf.nn.silu}
DEFAULT_REPARAM_RANGE = (1e-3, 1e3)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """One meta-training task: data, network, batch size and horizon."""
  dataset: str
  architecture: str  # "mlp" or "conv"
  sizes: tuple  # hidden widths (mlp) or channels (conv)
  activation: str
  batch_size: int
  horizon: int

  @property
  def name(self) -> str:
    sizes = "x".join(str(s) for s in self.sizes)
    return f"{self.dataset}_{self.architecture}_{sizes}_{self.activation}_b{self.batch_size}"


TASKS = (
    TaskSpec("mnist8", "mlp", (64, 32), "relu", 64, 2000),  # Celo2's task shape
    TaskSpec("digits_projected", "mlp", (32,), "tanh", 16, 1000),
    TaskSpec("classification40", "mlp", (128, 64, 32), "tanh", 32, 2000),
    TaskSpec("mnist14", "conv", (8, 16), "relu", 64, 1000),
    TaskSpec("mnist8", "mlp", (32, 32, 32, 32), "gelu", 128, 2000),
    TaskSpec("mnist14", "mlp", (128,), "silu", 32, 2000),
    TaskSpec("classification40", "mlp", (64, 64), "relu", 128, 1000),
    TaskSpec("digits_projected", "mlp", (96, 48), "gelu", 64, 2000),
)


class MetaTaskFamily(mlp.ClassifierFamily):
  """One task of `TASKS` as a problem family (softmax cross-entropy, He / Glorot init).

  Conv nets: per channel count a 3x3 SAME convolution, the activation and a
  2x2 max-pool, then a dense layer to the logits. Weights ~ N(0, 2 / fan_in)
  for ReLU-like activations, N(0, 1 / fan_in) for tanh; biases zero.

  Tensors of a problem: `param_i`, `batch_seed`, `data_offset`, `data_size`
  and `reparam_scale` (1 without augmentation).

  Args:
    seed: family seed (problems and the dataset split derive from it).
    spec: the `TaskSpec`.
    reparam: draw a reparameterisation scale per problem (see the module).
    reparam_range: `(lo, hi)`, 0 < lo <= hi: the scale is log-uniform in it.
    train_size_range: None (every example of the split), or `(lo, hi)` with
      0 < lo <= hi <= 1: a problem keeps a log-uniform fraction in it of its
      split's examples (see the module).
  """

  def __init__(self, seed: int = 0, *, spec: TaskSpec, reparam: bool = False,
               reparam_range=DEFAULT_REPARAM_RANGE, train_size_range=None):
    check_reparam(reparam, reparam_range)
    self.train_size_range = check_train_size_range(train_size_range)
    if spec.architecture not in ("mlp", "conv") or spec.activation not in ACTIVATIONS:
      raise ValueError(f"A task's architecture must be 'mlp' or 'conv' and its activation one "
                       f"of {sorted(ACTIVATIONS)}. Received: {spec!r}")
    data = meta_data.load(spec.dataset, image_shape=spec.architecture == "conv")
    self.spec, self.name = spec, spec.name
    self.dataset, self.architecture = spec.dataset, spec.architecture
    self.reparam, self.reparam_range = bool(reparam), tuple(float(r) for r in reparam_range)
    if spec.architecture == "conv":
      height = data.x.shape[1]
      self._pool = []
      for _ in spec.sizes:
        self._pool.append(height // 2 >= 2)
        height = height // 2 if self._pool[-1] else height
      self._flat_size = int(height * height * spec.sizes[-1])
    config = dict(spec=dataclasses.asdict(spec), reparam=self.reparam,
                  reparam_range=self.reparam_range)
    if self.train_size_range is not None:  # left out when off: older configs stay equal
      config["train_size_range"] = self.train_size_range
    super().__init__(seed, data, spec.batch_size, spec.horizon, config)

  def _weight(self, rng, shape, fan_in):
    gain = 1.0 if self.spec.activation == "tanh" else 2.0
    return math.sqrt(gain / fan_in) * rng.standard_normal(shape)

  def _draw_params(self, rng):
    params = []
    if self.architecture == "conv":
      in_channels = self.input_shape[-1]
      for out_channels in self.spec.sizes:
        params += [self._weight(rng, (3, 3, in_channels, out_channels), 9 * in_channels),
                   np.zeros(out_channels)]
        in_channels = out_channels
      sizes = [self._flat_size, self.num_classes]
    else:
      sizes = [int(np.prod(self.input_shape)), *self.spec.sizes, self.num_classes]
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
      params += [self._weight(rng, (fan_in, fan_out), fan_in), np.zeros(fan_out)]
    return params

  def _sample_tensors(self, split, rng, seed):
    tensors = super()._sample_tensors(split, rng, seed)
    scale = 1.0
    if self.reparam:  # drawn after the weights: the same w with and without augmentation
      lo, hi = self.reparam_range
      scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    for i in range(self._num_param_tensors):
      tensors[f"param_{i}"] = tensors[f"param_{i}"] / scale
    tensors["reparam_scale"] = tf.constant(scale, tf.float32)
    if self.train_size_range is not None:  # drawn last: the same w and scale as without
      lo, hi = self.train_size_range
      size = int(tensors["data_size"])
      fraction = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
      kept = min(size, max(self.batch_size, int(round(fraction * size))))
      tensors["data_size"] = tf.constant(kept, tf.int64)
    return tensors

  def losses(self, tensors, params, batch):
    scale = tf.cast(tensors["reparam_scale"], params[0].dtype)
    return super().losses(tensors, [p * scale for p in params], batch)

  def logits(self, params, x):
    act = ACTIVATIONS[self.spec.activation]
    h = x
    if self.architecture == "conv":
      for i, pool in enumerate(self._pool):
        h = act(tf.nn.bias_add(tf.nn.conv2d(h, params[2 * i], strides=1, padding="SAME"),
                               params[2 * i + 1]))
        if pool:
          h = tf.nn.max_pool2d(h, ksize=2, strides=2, padding="VALID")
      params = params[2 * len(self._pool):]
    h = tf.reshape(h, [tf.shape(h)[0], -1])
    for i in range(len(params) // 2):
      h = tf.matmul(h, params[2 * i]) + params[2 * i + 1]
      if i < len(params) // 2 - 1:
        h = act(h)
    return h


def _is_pair_of_numbers(value) -> bool:
  return isinstance(value, (list, tuple)) and len(value) == 2 and all(
      isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def check_reparam(reparam, reparam_range):
  """Raises ValueError unless `reparam` is a bool and `reparam_range` is (lo, hi), 0 < lo <= hi."""
  if not isinstance(reparam, bool):
    raise ValueError(f"Argument `reparam` must be True or False. Received: reparam={reparam!r}")
  if not _is_pair_of_numbers(reparam_range) or not 0 < reparam_range[0] <= reparam_range[1]:
    raise ValueError("Argument `reparam_range` must be (lo, hi) with 0 < lo <= hi. "
                     f"Received: reparam_range={reparam_range!r}")


def check_train_size_range(train_size_range):
  """`train_size_range` as a tuple of floats, or None; raises ValueError unless None or
  `(lo, hi)` with 0 < lo <= hi <= 1."""
  if train_size_range is None:
    return None
  if (not _is_pair_of_numbers(train_size_range) or
      not 0 < train_size_range[0] <= train_size_range[1] <= 1):
    raise ValueError("Argument `train_size_range` must be None or (lo, hi) with "
                     f"0 < lo <= hi <= 1. Received: train_size_range={train_size_range!r}")
  return tuple(float(r) for r in train_size_range)


class GeneralTasks(mixture.MixtureFamily):
  """The `TASKS` (or a selection) as one family: problem i is from task i mod K.

  Args:
    seed: family seed; task k gets the seed `problem_seed(seed, "train", k)`.
    tasks: task names (`TaskSpec.name`) to use, or None for all of `TASKS`.
    reparam: reparameterisation augmentation (see the module docstring).
    reparam_range: `(lo, hi)` of the log-uniform scale.
    train_size_range: None, or `(lo, hi)`: the log-uniform fraction of its
      split's examples a problem keeps (see the module).
  """

  name = "general_tasks"

  def __init__(self, seed: int = 0, *, tasks=None, reparam: bool = False,
               reparam_range=DEFAULT_REPARAM_RANGE, train_size_range=None):
    by_name = {spec.name: spec for spec in TASKS}
    if tasks is None:
      tasks = [spec.name for spec in TASKS]
    unknown = [t for t in tasks if t not in by_name] if isinstance(tasks, (list, tuple)) else tasks
    if not isinstance(tasks, (list, tuple)) or not tasks or unknown:
      raise ValueError(f"Argument `tasks` must be a non-empty list of task names from "
                       f"{sorted(by_name)}. Received: tasks={tasks!r}")
    check_reparam(reparam, reparam_range)
    train_size_range = check_train_size_range(train_size_range)
    components = [MetaTaskFamily(base.problem_seed(seed, "train", k), spec=by_name[t],
                                 reparam=reparam, reparam_range=reparam_range,
                                 train_size_range=train_size_range)
                  for k, t in enumerate(tasks)]
    super().__init__(components, seed=seed)
    self._config = dict(tasks=list(tasks), reparam=reparam,
                        reparam_range=[float(r) for r in reparam_range])
    if train_size_range is not None:
      self._config["train_size_range"] = list(train_size_range)

  def datasets(self) -> set:
    """The datasets the tasks train on."""
    return {c.dataset for c in self.components}

  def architectures(self) -> set:
    """The `(architecture, sizes)` pairs of the tasks."""
    return {(c.architecture, c.spec.sizes) for c in self.components}
