"""Evolution-strategy meta-gradients over truncated unrolls: PES and truncated ES.

The shared truncation machinery and both estimators (as learned_optimization
keeps them, one module). A meta-step runs N antithetic pairs of particles for
K inner steps each. Pair i draws eps_i ~ N(0, sigma^2 I) over the
meta-parameters theta; its particle `+` runs theta + eps_i, its particle `-`
runs theta - eps_i, each from its own carried inner state (parameters, rule
state, step) on the same problem and minibatches. With L+-_i the truncation's
meta-loss of each particle,

    PES:  xi_i <- xi_i + eps_i,   g = 1 / (2 N sigma^2) sum_i xi_i (L+_i - L-_i)
    ES:                           g = 1 / (2 N sigma^2) sum_i eps_i (L+_i - L-_i)

where xi_i, the perturbations pair i has accumulated since its trajectory
started, is reset to 0 when it restarts (Vicol, Metz & Sohl-Dickstein 2021).
Summed over the truncations of a trajectory the PES estimate is unbiased for
the gradient of the whole trajectory's (Gaussian-smoothed) meta-loss; ES,
which ignores how earlier perturbations moved the carried state, is not.
Trajectories end on truncation boundaries, so a pair never restarts inside a
truncation.

All particles of a meta-step run as one computation with a leading particle
axis: a `tf.while_loop` over the inner steps whose body draws each problem's
minibatch (stateless, in the graph) and then applies the loss, its gradient
and the rule to every particle at once with `tf.vectorized_map`. The rule and
the loss are the functions `keras_l2o.unroll` uses (`losses_and_grads`,
`rule_steps`), so every trainer runs one formula.

A truncation's meta-loss of a particle is the mean over its K updates of
`f(theta_t)` (`"sum"`, as BPTT's) or of `log f(theta_t) - log f(theta_0)`
(`"log_ratio"`), where theta_0 starts the particle's *trajectory*: the
baseline does not depend on the meta-parameters, so the meta-losses of a
trajectory's truncations add up to its whole meta-loss, which is what PES
needs to stay unbiased. With `meta_loss_data="held_out"` the f in both is the
loss on a minibatch of examples the problem never trains on
(`family.heldout_batch`), drawn at the same steps: the meta-objective is then
how well the trained parameters generalise, not how fast the training loss
falls (learned_optimization's outer-validation meta-loss). With
`meta_loss_data="both"` the meta-loss is the mean of the two (for
`"log_ratio"`, both terms against the held-out loss at the trajectory's start,
the same for the two particles of a pair): it rewards fast fitting and
generalisation together.
"""

from typing import NamedTuple

import tensorflow as tf

from keras_l2o import unroll as unroll_lib

OBJECTIVES = ("sum", "log_ratio")
ESTIMATORS = ("pes", "es")
META_LOSS_DATA = ("train", "held_out", "both")
LOG_EPS = 1e-12
_UNROLLED_BATCHES = 32


class Particles(NamedTuple):
  """The carried inner state of P particles, each field with a leading [P] axis."""
  params: list  # per optimizee tensor: [P, ...]
  rule_state: list  # per optimizee tensor: the rule's state NamedTuple of [P, ...]
  step: tf.Tensor  # [P] int64: updates applied in the particle's trajectory
  init_loss: tf.Tensor  # [P]: f(theta_0) of the trajectory (the log_ratio baseline)


def stack(nests):
  """Stacks equally structured nests along a new leading axis."""
  return tf.nest.map_structure(lambda *values: tf.stack(values), *nests)


def tile(nest, copies: int):
  """Repeats every leaf `copies` times along its leading axis ([M] -> [copies * M])."""
  if copies == 1:
    return nest
  return tf.nest.map_structure(lambda t: tf.concat([t] * copies, axis=0), nest)


def init_particles(rule, family, tensors, dtype=tf.float32) -> Particles:
  """Fresh trajectories of the problems `tensors` (each leaf [P, ...]).

  Args:
    rule: the rule.
    family: the problem family.
    tensors: problem tensors stacked on a leading [P] axis.
    dtype: dtype of the parameters.

  Returns:
    `Particles` at step 0.
  """
  count = int(tf.nest.flatten(tensors)[0].shape[0])
  states = [unroll_lib.init_state(rule, family, tf.nest.map_structure(lambda t, i=i: t[i],
                                                                      tensors), dtype)
            for i in range(count)]
  params = stack([s.params for s in states])
  rule_state = [type(s)(*values) for s, values in zip(
      states[0].rule_state, stack([[tuple(r) for r in s.rule_state] for s in states]))]
  return Particles(params, rule_state, tf.zeros([count], tf.int64), tf.zeros([count], dtype))


def _map(fn, elems, vectorized: bool):
  """`fn` over the leading axis of `elems`: vectorised, or a loop (the reference).

  Ops `tf.vectorized_map` cannot vectorise (a convolution whose filter differs
  per particle) fall back to a loop inside the vectorised computation.
  """
  if vectorized:
    return tf.vectorized_map(fn, elems, fallback_to_while_loop=True)
  count = int(tf.nest.flatten(elems)[0].shape[0])
  return stack([fn(tf.nest.map_structure(lambda t, i=i: t[i], elems)) for i in range(count)])


def _batches(family, tensors, steps, copies, draw=None):
  """Each problem's minibatch at its particles' step, drawn in the graph, tiled `copies` times.

  `draw(tensors, step)` draws one minibatch (default: `family.batch`).

  A problem's batch is a stateless draw from its own seed, which
  `tf.vectorized_map` cannot vectorise: up to `_UNROLLED_BATCHES` problems are
  drawn side by side (independent ops), more by `tf.map_fn` (a graph of
  constant size).
  """
  draw = draw or family.batch
  count = int(tf.nest.flatten(tensors)[0].shape[0])
  first = draw(tf.nest.map_structure(lambda t: t[0], tensors), steps[0])
  if not tf.nest.flatten(first):  # a full-batch problem: nothing to draw
    return first
  if count <= _UNROLLED_BATCHES:
    batches = [first] + [draw(tf.nest.map_structure(lambda t, i=i: t[i], tensors), steps[i])
                         for i in range(1, count)]
    return tile(stack(batches), copies)
  signature = tf.nest.map_structure(lambda b: tf.TensorSpec(b.shape, b.dtype), first)
  batches = tf.map_fn(lambda args: draw(*args), (tensors, steps[:count]),
                      fn_output_signature=signature)
  return tile(batches, copies)


def _particle_step(rule, family, state_types, learning_rate):
  """One inner step of one particle, `(meta, tensors, params, rule_state, step, batch[,
  heldout_batch]) -> (losses, params, rule_state)`, for `_map` over the particles.

  `losses` is `(loss,)`, the training loss before the update, or with a
  `heldout_batch` `(loss, heldout_loss)`, the loss before the update on it."""

  def particle_step(args):
    meta, tensor, params, rule_state, step, batch = args[:6]
    loss, grads = unroll_lib.losses_and_grads(family, tensor, params, batch)
    losses = (loss,) + tuple(family.loss(tensor, params, b) for b in args[6:])
    rule_state = [t(*s) for t, s in zip(state_types, rule_state)]
    params, rule_state = unroll_lib.rule_steps(rule, meta, grads, params, rule_state, step,
                                               learning_rate, loss)
    return losses, params, [tuple(s) for s in rule_state]

  return particle_step


def _truncation_values(losses, final, init_loss, objective):
  """Each particle's meta-loss over a truncation.

  Args:
    losses: `[K, P]` f(theta_t) before each update.
    final: `[P]` the loss after the last update.
    init_loss: `[P]` the loss where the particle's trajectory started.
    objective: `"sum"` or `"log_ratio"`.

  Returns:
    `values [P]`.
  """
  after = tf.concat([losses[1:], final[None]], axis=0)  # f(theta_{t+1}) after each update
  if objective == "sum":
    return tf.reduce_mean(after, axis=0)
  return tf.reduce_mean(tf.math.log(after + LOG_EPS), axis=0) - tf.math.log(init_loss + LOG_EPS)


def run_truncation(rule, family, meta_params, tensors, particles: Particles, num_steps: int,
                   learning_rate=1.0, objective: str = "sum", vectorized: bool = True,
                   meta_loss_data: str = "train"):
  """Runs every particle `num_steps` inner steps with its own meta-parameters.

  Particle p works on problem `p % M` of the M problems in `tensors` (so
  P = copies x M; the copies of a problem share its minibatches, which must
  be at the same step).

  Args:
    rule: the rule (the function `LearnedOptimizer` applies).
    meta_params: meta-parameters, every leaf with a leading [P] axis.
    tensors: problem tensors, every leaf with a leading [M] axis.
    particles: where each particle is (`Particles`, leading [P]).
    num_steps: inner steps K (a Python int).
    learning_rate: scalar multiplying the rule's output.
    objective: `"sum"` or `"log_ratio"` (see the module docstring).
    vectorized: one vectorised computation (True) or a Python loop over the
      particles inside the graph (the reference it is tested against).
    meta_loss_data: `"train"` (the meta-loss is measured on the minibatches
      the particles train on), `"held_out"` (on `family.heldout_batch`) or
      `"both"` (the mean of the two meta-losses).

  Returns:
    `(values, mean_losses, new_particles)`: `values` [P] each particle's
    meta-loss over the truncation, `mean_losses` [P] the mean training loss
    before its updates, and where the particles are afterwards.

  Raises:
    ValueError: for an unknown `objective` or `meta_loss_data`.
  """
  if objective not in OBJECTIVES:
    raise ValueError(f"`objective` must be one of {list(OBJECTIVES)}. Received: "
                     f"objective={objective!r}")
  if meta_loss_data not in META_LOSS_DATA:
    raise ValueError(f"`meta_loss_data` must be one of {list(META_LOSS_DATA)}. Received: "
                     f"meta_loss_data={meta_loss_data!r}")
  heldout = meta_loss_data != "train"
  count = int(particles.step.shape[0])
  problems = int(tf.nest.flatten(tensors)[0].shape[0])
  copies = count // problems
  particle_tensors = tile(tensors, copies)
  state_types = [type(s) for s in particles.rule_state]
  particle_step = _particle_step(rule, family, state_types, learning_rate)

  draw_heldout = family.heldout_batch if heldout else None
  # One history per loss the particles report: the training loss, then the held-out one.
  histories = tuple(tf.TensorArray(particles.params[0].dtype, size=num_steps,
                                   element_shape=[count]) for _ in range(1 + heldout))

  def body(i, params, rule_state, histories):
    steps = particles.step + tf.cast(i, tf.int64)
    batches = [_batches(family, tensors, steps, copies)]
    if heldout:
      batches.append(_batches(family, tensors, steps, copies, draw_heldout))
    losses, params, rule_state = _map(particle_step, (
        meta_params, particle_tensors, params, rule_state, steps, *batches), vectorized)
    return i + 1, params, rule_state, tuple(h.write(i, v) for h, v in zip(histories, losses))

  start = (tf.constant(0), list(particles.params), [tuple(s) for s in particles.rule_state],
           histories)
  _, params, rule_state, histories = tf.while_loop(lambda i, *_: i < num_steps, body, start,
                                                   maximum_iterations=num_steps)
  end = particles.step + num_steps
  losses = [h.stack() for h in histories]  # [K, P] each: f(theta_t) before each update
  # the trajectory's initial loss, on the meta-loss's data (held-out data for "both")
  init_loss = tf.where(particles.step == 0, losses[-1][0], particles.init_loss)
  measured = {"train": [0], "held_out": [1], "both": [0, 1]}[meta_loss_data]
  values = []
  for which in measured:
    batch = _batches(family, tensors, end, copies, draw_heldout if which else None)
    final = _map(lambda a: family.loss(a[0], a[1], a[2]), (particle_tensors, params, batch),
                 vectorized)
    values.append(_truncation_values(losses[which], final, init_loss, objective))
  values = tf.add_n(values) / len(values)
  new = Particles(params, [t(*s) for t, s in zip(state_types, rule_state)], end, init_loss)
  return values, tf.reduce_mean(losses[0], axis=0), new


def sample_perturbations(meta_params, num_pairs: int, sigma: float, seed, counter):
  """eps ~ N(0, sigma^2 I) for `num_pairs` pairs, stateless in `(seed, counter)`.

  Args:
    meta_params: the meta-parameters (nested; shapes and dtypes).
    num_pairs: N.
    sigma: the standard deviation.
    seed: int64 scalar (the run's seed).
    counter: int64 scalar (the meta-step): a new draw per meta-step.

  Returns:
    A nest like `meta_params`, leaves [N, ...].
  """
  leaves = tf.nest.flatten(meta_params)
  draws = []
  for j, leaf in enumerate(leaves):
    leaf = tf.convert_to_tensor(leaf)
    key = tf.stack([tf.cast(seed, tf.int64) * 1009 + j, tf.cast(counter, tf.int64)])
    draws.append(sigma * tf.random.stateless_normal([num_pairs, *leaf.shape], key,
                                                    dtype=leaf.dtype))
  return tf.nest.pack_sequence_as(meta_params, draws)


def antithetic(meta_params, eps):
  """theta + eps for the `+` particles then theta - eps for the `-` ones: leaves [2N, ...]."""
  return tf.nest.map_structure(lambda m, e: tf.concat([m[None] + e, m[None] - e], axis=0),
                               meta_params, eps)


def accumulate(estimator: str, xi, eps):
  """The perturbation each pair's loss difference is credited to, and the new accumulator.

  PES credits all perturbations since the trajectory started (`xi + eps`);
  ES only this truncation's (`eps`, and keeps `xi = eps`).

  Raises:
    ValueError: for an unknown estimator.
  """
  if estimator == "pes":
    return tf.nest.map_structure(lambda x, e: x + e, xi, eps)
  if estimator == "es":
    return eps
  raise ValueError(f"`estimator` must be one of {list(ESTIMATORS)}. Received: "
                   f"estimator={estimator!r}")


def pair_gradients(credit, differences, sigma: float):
  """Each pair's estimate `credit_i (L+_i - L-_i) / (2 sigma^2)`: leaves [N, ...]."""
  def one(c):
    d = tf.reshape(tf.cast(differences, c.dtype), [-1] + [1] * (len(c.shape) - 1))
    return c * d / (2.0 * sigma * sigma)
  return tf.nest.map_structure(one, credit)


def truncation_estimate(rule, family, meta_params, eps, xi, tensors, particles: Particles,
                        num_steps: int, sigma: float, estimator: str = "pes",
                        learning_rate=1.0, objective: str = "sum", vectorized: bool = True,
                        meta_loss_data: str = "train"):
  """One truncation of N antithetic pairs and its meta-gradient estimate.

  Args:
    rule, family: the rule and the problem family.
    meta_params: theta (nested tensors, no particle axis).
    eps: this truncation's perturbations, leaves [N, ...].
    xi: the pairs' accumulated perturbations before it (zero for a pair whose
      trajectory starts now), leaves [N, ...].
    tensors: each pair's problem, leaves [N, ...].
    particles: `Particles` with [2N] leading axes: the N `+` particles, then
      the N `-` ones.
    num_steps, learning_rate, objective, vectorized, meta_loss_data: as
      `run_truncation`.
    sigma: the perturbations' standard deviation.
    estimator: `"pes"` or `"es"`.

  Returns:
    A dict: `grad_sum` (the sum of the pairs' estimates; divide by the number
    of pairs of the meta-batch), `pair_grads` (each pair's estimate), `xi`
    (the new accumulators), `particles` (the new states), `values` [2N]
    meta-losses, `mean_losses` [2N], `finite` [N] (pairs whose losses and
    parameters stayed finite; the others contribute 0 and must restart).
  """
  num_pairs = int(tf.nest.flatten(eps)[0].shape[0])
  values, mean_losses, new = run_truncation(rule, family, antithetic(meta_params, eps), tensors,
                                            particles, num_steps, learning_rate, objective,
                                            vectorized, meta_loss_data)
  differences = values[:num_pairs] - values[num_pairs:]
  finite = tf.math.is_finite(differences)
  for p in new.params:
    ok = tf.reduce_all(tf.math.is_finite(tf.reshape(p, [2, num_pairs, -1])), axis=[0, 2])
    finite = tf.logical_and(finite, ok)
  differences = tf.where(finite, differences, tf.zeros_like(differences))
  credit = accumulate(estimator, xi, eps)
  pair_grads = pair_gradients(credit, differences, sigma)
  grad_sum = tf.nest.map_structure(lambda g: tf.reduce_sum(g, axis=0), pair_grads)
  return {"grad_sum": grad_sum, "pair_grads": pair_grads, "xi": credit, "particles": new,
          "values": values, "mean_losses": mean_losses, "finite": finite}
