"""The global policy pi of `trainer.GPSTrainer`: its mean and variance, its supervised fit
toward the local policies, its linearisation and its KL to them (GPS.md 3.4-3.5).

`GlobalPolicy` is mixed into `trainer.GPSTrainer` (Li & Malik's P1 policy over
the flat state); `group_trainer.GroupGPSTrainer` overrides the parts that differ
for a coordinatewise policy.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import dynamics as dynamics_lib
from . import policy_update

_F64 = tf.float64


def stack(structures):
  """Stacks equally structured NamedTuples of tensors along a new first axis."""
  return tf.nest.map_structure(lambda *values: tf.stack(values), *structures)


def local_means(policy, states):
  """K_t s + k_t at sampled states [M, N, T, dX] -> [M, N, T, dU]."""
  return (tf.einsum("mtux,mntx->mntu", tf.cast(policy.K, _F64), tf.cast(states, _F64))
          + tf.cast(policy.k, _F64)[:, None])


def paths(nested, prefix=()):
  """(path, leaf) pairs of a nested dict, in sorted-key order."""
  if isinstance(nested, dict):
    for key in sorted(nested):
      yield from paths(nested[key], prefix + (key,))
  else:
    yield prefix, nested


class GlobalPolicy:
  """The global policy's parts of a GPS trainer (a mixin of `trainer.GPSTrainer`).

  Needs the trainer's `rule`, `meta_vars`, `config`, `d_u`, `lam`, `nu`,
  `normalizer_frozen`, `policy_priors`, `_trainable`, `policy_optimizer` and
  `_train_policy_fn`.
  """

  def _policy_mean(self, observations):
    """mu_pi(o) for observations [..., dO] (float64)."""
    flat = tf.reshape(observations, [-1, observations.shape[-1]])
    mean = self.rule.mean(self.meta_vars, tf.cast(flat, _F64))
    return tf.reshape(mean, tf.concat([tf.shape(observations)[:-1], [self.d_u]], 0))

  def _policy_variance(self):
    return tf.exp(tf.cast(self.meta_vars["log_variance"], _F64))

  def _freeze_normalizer(self, observations):
    """Sets the observation standardisation once, keeping the policy's function unchanged.

    With mean m and std s (floored at 1e-3), the first layer's kernel W and
    bias b become diag(s) W and b + m W, so (o - m) / s W' + b' = o W + b.
    """
    flat = tf.reshape(tf.cast(observations, _F64), [-1, observations.shape[-1]])
    mean = tf.reduce_mean(flat, axis=0)
    std = tf.maximum(tf.math.reduce_std(flat, axis=0), 1e-3)
    first = "hidden_0" if self.rule.hidden_units else "output"
    layer = self.meta_vars[first]
    kernel = tf.cast(layer["kernel"], _F64)
    dtype = layer["kernel"].dtype
    layer["bias"].assign(tf.cast(tf.cast(layer["bias"], _F64)
                                 + tf.linalg.matvec(kernel, mean, transpose_a=True), dtype))
    layer["kernel"].assign(tf.cast(std[:, None] * kernel, dtype))
    self.meta_vars["normalizer"]["mean"].assign(tf.cast(mean, dtype))
    self.meta_vars["normalizer"]["std"].assign(tf.cast(std, dtype))
    self.normalizer_frozen.assign(True)

  def _theta_loss(self, observations, targets, precisions, weights, batch):
    """The weighted Mahalanobis distance of the policy's means to the targets (GPS.md 3.5)."""
    mean = self.rule.mean(self.meta_vars, observations)
    return policy_update.theta_loss(targets, precisions, weights, mean, batch)

  def _train_policy(self, observations, targets, precisions, weights, indices):
    """Adam steps on theta_loss + weight decay over minibatches `indices` [S, B]."""
    kernels = [v for path, v in paths(self.meta_vars) if path[-1] == "kernel"]
    batch = tf.shape(indices)[1]
    total = tf.constant(0.0, tf.float32)
    for i in tf.range(tf.shape(indices)[0]):
      rows = indices[i]
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(self._trainable)
        loss = self._theta_loss(*(tf.gather(v, rows) for v in (observations, targets, precisions,
                                                                weights)), batch)
        decay = tf.add_n([tf.nn.l2_loss(k) for k in kernels])
        objective = loss + self.config.weight_decay * decay
      grads = tape.gradient(objective, self._trainable)
      self.policy_optimizer.apply(grads, self._trainable)
      total += loss
    return total / tf.cast(tf.shape(indices)[0], tf.float32)

  def _policy_step(self, iteration, inner, observations, states, policy):
    """The supervised theta step toward psi (GPS.md 3.5); returns the mean theta loss."""
    config = self.config
    if not bool(self.normalizer_frozen):
      self._freeze_normalizer(observations)
    mu_psi = local_means(policy, states)
    targets, precisions, weights = policy_update.policy_targets(mu_psi, policy.G, self.lam,
                                                                self.nu)
    weights = policy_update.normalise_weights(weights)
    count = int(np.prod(targets.shape[:-1]))
    targets = tf.reshape(targets, [count, self.d_u])
    precisions = tf.reshape(precisions, [count, self.d_u, self.d_u])
    weights = tf.reshape(weights, [count])
    variance = policy_update.diagonal_variance(precisions, weights)
    self.meta_vars["log_variance"].assign(tf.cast(tf.math.log(variance), tf.float32))
    rng = np.random.default_rng([config.seed, iteration, inner])
    indices = rng.integers(0, count, size=(config.policy_steps, min(config.policy_batch_size,
                                                                    count)))
    obs = tf.reshape(tf.cast(observations, tf.float32), [count, -1])
    return float(self._train_policy_fn(obs, tf.cast(targets, tf.float32),
                                       tf.cast(precisions, tf.float32),
                                       tf.cast(weights, tf.float32),
                                       tf.constant(indices, tf.int32)))

  def _linearize(self, states, policy_means):
    variance = self._policy_variance()
    return stack([dynamics_lib.linearize_policy(
        states[m], policy_means[m], variance, prior=self.policy_priors[m],
        regularization=self.config.policy_regularization)
                   for m in range(self.config.num_conditions)])

  def _kl_to_policy(self, policy, states, policy_means):
    """KL(psi_t(.|x_i) || pi(.|o_i)) per sample, [M, N, T]."""
    mu_psi = local_means(policy, states)
    scale = tf.linalg.cholesky(policy.G)[:, None]  # [M, 1, T, dU, dU]
    local = tfp.distributions.MultivariateNormalTriL(mu_psi, tf.broadcast_to(
        scale, tf.concat([tf.shape(mu_psi), [self.d_u]], 0)))
    global_ = tfp.distributions.MultivariateNormalDiag(
        policy_means, tf.broadcast_to(tf.sqrt(self._policy_variance()), tf.shape(policy_means)))
    return tfp.distributions.kl_divergence(local, global_)
