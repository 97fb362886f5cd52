"""Guided policy search over coordinate groups (GPS.md section 2; Li & Malik 2017).

Trains the coordinatewise LSTM policy (`gps_lstm` rule) on a family of nets
(e.g. the MNIST MLP 48-48-10 ReLU of P2). For M training problems
("conditions") and the G variables ("groups") of the net, there are C = M G
small LQG problems, one per (condition, group), each with action dimension 1
and the per-coordinate state of `coordinate_groups` (size 6). Each tracks S
coordinates of its group; N trajectories per condition give N S samples of its
LQG per iteration. One iteration is the BADMM loop of `trainer.GPSTrainer`
with these substitutions:

* sampling: every coordinate follows its group's local controller
  psi_{m,g,t}(u | s) = N(K s + k, G) (`coordinate_groups.rollout`);
* dynamics: `fit_dynamics` per (condition, group, step) on the N S tracked
  transitions and their sign-flipped copies (`_mirrored`; no GMM prior: each step has hundreds of samples for a
  13-dimensional regression; a ridge `dynamics_regularization` in the LQR's
  unit-spread coordinates keeps it well posed);
* cost: `coordinate_groups.group_cost` (second-order change of the objective,
  with the curvature measured along the sampled steps, weighted by the number
  of later steps it affects);
* the global policy's mean along a trajectory is the LSTM run over the
  coordinate's observations (`CoordinatePolicyRule.sequence_mean`), so its
  linearisation, the lambda and nu updates and KL(psi || pi) use the policy
  exactly as the optimizer applies it;
* the supervised fit trains the LSTM on whole tracked-coordinate sequences
  toward mu_psi - G lambda / nu with weights nu_t / G_t (normalised), and
  Sigma_pi is one variance per group (closed form, GPS.md 3.5).

Initial local policy: per condition, the best of a grid of heavy-ball
controllers (rates x momenta, momenta from the state's averages) on noiseless
rollouts (lowest mean objective over the horizon); its trajectories fix the
unit scales of the LQR and the initial noise is `init_noise` action units.

All state (meta-parameters and Adam slots, psi, lambda, nu, eta, step_mult,
scales, the per-group policy variances, counters) is in one
`tf.train.Checkpoint` written after every iteration; noise is drawn from
seeds keyed by (seed, iteration, condition, sample), so a resumed run ends
exactly as an uninterrupted one.

Example:

  >>> import tempfile, keras_l2o
  >>> from keras_l2o import problems
  >>> from trainers.gps import group_trainer
  >>> config = group_trainer.GroupGPSConfig(
  ...     iterations=1, num_conditions=1, samples_per_condition=2, coordinates_per_group=8,
  ...     horizon=5, policy_steps=2, validation_problems=1, momentum_rates=(0.1,),
  ...     momentum_values=(0.0,))
  >>> family = problems.get("digits_mlp", hidden_sizes=(4,), horizon=5)
  >>> result = group_trainer.GroupGPSTrainer("gps_lstm", family, config,
  ...                                        tempfile.mkdtemp()).run()
  >>> result["iterations"]
  1
"""


import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o import run_directory
from . import config as gps_config
from . import coordinate_groups as groups_lib
from . import dynamics as dynamics_lib
from . import global_policy
from . import lqr
from . import policy_class
from . import policy_update
from . import step_size
from . import trainer as gps_trainer

_F64 = tf.float64
_SCALE_FLOOR = 1e-12


GroupGPSConfig = gps_config.GroupGPSConfig


class GroupGPSTrainer(gps_trainer.GPSTrainer):
  """Meta-trains the `gps_lstm` rule by GPS over the coordinate groups of a net.

  Args:
    rule: the `gps_lstm` rule (or its name).
    family: a `ProblemFamily` (any number of variables of any shapes).
    config: a `GroupGPSConfig`.
    save_dir: run directory (see `trainers.base`); created if missing.
    extra_config: more JSON-serialisable entries for `config.json`.

  Raises:
    ValueError: for a rule other than `gps_lstm` or an invalid config.
  """

  def _check_and_lay_out(self):
    """Checks the rule; lays out the coordinate groups of the family's variables."""
    config = self.config
    if self.rule.name not in policy_class.RULES:
      raise ValueError(f"Coordinate-group GPS meta-trains the rules {list(policy_class.RULES)} "
                       f"(coordinatewise policies); received rule {self.rule.name!r}.")
    shapes = [tuple(p.shape) for p in self.family.init_params(self._problem("train", 0).tensors)]
    scales = [self.rule.width_scale(s) for s in shapes] if self.rule.name == "gps_general" else []
    if any(scale != 1.0 for scale in scales):  # the supervised fit regresses `step` without it
      raise ValueError(f"Coordinate-group GPS trains gps_general's fan_in_reference only where it "
                       f"is the identity: every kernel's fan-in must equal fan_in_reference="
                       f"{self.rule.fan_in_reference:g}; the family's parameter shapes are {shapes}.")
    self.layout = groups_lib.group_layout(shapes, config.coordinates_per_group,
                                          (config.seed, 104729))
    self.num_groups = len(shapes)
    self.d_x, self.d_u = groups_lib.STATE_SIZE, 1

  def _trainable_variables(self):
    return [v for path, v in global_policy.paths(self.meta_vars)
            if path[0] in policy_class.trainable_paths(self.rule)]

  def _make_gps_state(self) -> dict:
    """The BADMM state of the C = M G LQGs and the unit scales (checkpointed)."""
    config = self.config
    m, g, t = config.num_conditions, self.num_groups, config.horizon
    c, d_x = m * g, self.d_x
    zeros = lambda *shape: tf.Variable(tf.zeros(shape, _F64), trainable=False)  # noqa: E731
    self.psi_K = zeros(c, t, 1, d_x)  # pylint: disable=invalid-name
    self.psi_k = zeros(c, t, 1)
    self.psi_G = zeros(c, t, 1, 1)  # pylint: disable=invalid-name
    self.lam = zeros(c, t, 1)
    self.nu = tf.Variable(tf.fill([c, t], tf.constant(config.init_pol_wt, _F64)),
                          trainable=False)
    self.eta = tf.Variable(tf.ones([c], _F64), trainable=False)
    self.step_mult = tf.Variable(tf.ones([c], _F64), trainable=False)
    self.previous_objectives = zeros(c, 2)
    self.state_scale = tf.Variable(tf.ones([c, d_x], _F64), trainable=False)
    self.action_scale = tf.Variable(tf.ones([c], _F64), trainable=False)
    self.cost_scale = tf.Variable(tf.ones([c], _F64), trainable=False)
    self.policy_log_variance = zeros(g)  # raw units, one per group
    self.has_previous = tf.Variable(False, trainable=False)
    self.normalizer_frozen = tf.Variable(False, trainable=False)
    self.initialized = tf.Variable(False, trainable=False)
    self.initial_momentum = zeros(m, 2)
    return dict(
        psi_K=self.psi_K, psi_k=self.psi_k, psi_G=self.psi_G, lam=self.lam, nu=self.nu,
        eta=self.eta, step_mult=self.step_mult, previous_objectives=self.previous_objectives,
        state_scale=self.state_scale, action_scale=self.action_scale,
        cost_scale=self.cost_scale, policy_log_variance=self.policy_log_variance,
        has_previous=self.has_previous, normalizer_frozen=self.normalizer_frozen,
        initialized=self.initialized, initial_momentum=self.initial_momentum)

  def _make_functions(self):
    family, layout, config = self.family, self.layout, self.config
    observer = policy_class.observer(self.rule, layout.sizes)
    self._rollout_fn = tf.function(
        lambda tensors, gains, offsets, stddevs, seeds: groups_lib.rollout(
            family, tensors, layout, gains, offsets, stddevs, seeds, observer))
    self._policy_means_fn = tf.function(
        lambda meta, observations: policy_class.policy_means(
            self.rule, meta, observations, config.coordinates_per_group))
    self._train_policy_fn = tf.function(self._train_policy)
    self._evaluate_fn = tf.function(self._evaluate_problem)
    self._lqg_objective_fn = tf.function(step_size.lqg_objective)

  # ------------------------------------------------------------- helpers --
  def _to_raw(self, policy):
    """Scaled psi [C, T, ...] -> raw-unit (gains [M, T, G, dS], offsets, stddevs [M, T, G])."""
    m, g = self.config.num_conditions, self.num_groups
    a = self.action_scale[:, None]
    gains = policy.K[:, :, 0, :] * a[..., None] / self.state_scale[:, None, :]
    offsets = policy.k[:, :, 0] * a
    stddevs = tf.sqrt(policy.G[:, :, 0, 0]) * a

    def by_condition(v):  # [C, T, ...] -> [M, T, G, ...]
      v = tf.reshape(v, tf.concat([[m, g], tf.shape(v)[1:]], 0))
      return tf.transpose(v, [0, 2, 1] + list(range(3, v.shape.rank)))

    return by_condition(gains), by_condition(offsets), by_condition(stddevs)

  def _by_lqg(self, value):
    """[M, B, G, S, T, ...] -> [C = M G, B S, T, ...]."""
    shape = tf.shape(value)
    perm = [0, 2, 1, 3] + list(range(4, value.shape.rank))
    value = tf.transpose(value, perm)
    return tf.reshape(value, tf.concat([[shape[0] * shape[2], shape[1] * shape[3]], shape[4:]],
                                       0))

  def _samples(self, iteration, policy, noiseless=False):
    """Rollouts of every condition under `policy` (scaled psi [C, ...]) -> float64 tensors."""
    config = self.config
    gains, offsets, stddevs = self._to_raw(policy)
    outs = []
    for m in range(config.num_conditions):
      seeds = tf.constant([[config.seed, (iteration * 1009 + m) * 1009 + n]
                           for n in range(config.samples_per_condition)], tf.int32)
      std = tf.zeros_like(stddevs[m]) if noiseless else stddevs[m]
      outs.append(self._rollout_fn(self._problem("train", m).tensors, gains[m], offsets[m], std,
                                   seeds))
    stacked = groups_lib.GroupRollout(*(tf.cast(tf.stack(v), _F64) for v in zip(*outs)))
    states = self._by_lqg(stacked.states)
    actions = self._by_lqg(stacked.actions[..., None])
    observations = self._by_lqg(stacked.observations)
    # Curvature along the steps, mean over a condition's samples, in each LQG's units.
    curvature = tf.repeat(tf.reduce_mean(stacked.curvatures, axis=1), self.num_groups, axis=0)
    curvature = tf.maximum(curvature, 0.0) * (self.action_scale / self.state_scale[:, 0])[:, None]
    return states, actions, observations, stacked.losses, curvature  # losses [M, N, T + 1]

  def _scaled(self, states, actions):
    return (states / self.state_scale[:, None, None, :],
            actions / self.action_scale[:, None, None, None])

  # ------------------------------------------------------ initial policy --
  def _initialize_local_policies(self):
    """Best heavy-ball controller per condition; it also fixes the LQR's unit scales."""
    config = self.config
    t, g, d_x = config.horizon, self.num_groups, self.d_x
    zeros = tf.zeros([t, g], tf.float32)
    seeds = tf.constant([[config.seed, 0]], tf.int32)
    chosen = []
    for m in range(config.num_conditions):
      tensors = self._problem("train", m).tensors
      best = None
      for rate in config.momentum_rates:
        for momentum in config.momentum_values:
          gain = np.tile(groups_lib.momentum_gain(rate, momentum), (t, g, 1))
          out = self._rollout_fn(tensors, gain, zeros, zeros, seeds)
          value = float(tf.reduce_mean(out.losses[0, 1:]))
          if np.isfinite(value) and (best is None or value < best[0]):
            best = (value, rate, momentum)
      if best is None:
        raise FloatingPointError(f"Condition {m}: every initial controller of the grid diverged "
                                 f"(rates {config.momentum_rates}, momenta "
                                 f"{config.momentum_values}).")
      logging.info("Condition %d: initial controller rate=%g momentum=%g (mean objective %.5g)",
                   m, best[1], best[2], best[0])
      self.initial_momentum[m].assign([best[1], best[2]])
      chosen.append(groups_lib.momentum_gain(best[1], best[2]))
    # Raw gains per LQG, and unit scales from the chosen controllers' noiseless trajectories.
    raw = np.repeat(np.stack(chosen), g, axis=0)  # [C, dS]
    self.psi_K.assign(tf.tile(tf.constant(raw, _F64)[:, None, None, :], [1, t, 1, 1]))
    self.psi_k.assign(tf.zeros_like(self.psi_k))
    self.psi_G.assign(tf.zeros_like(self.psi_G))
    states, actions, _, _, _ = self._samples(0, self.psi(), noiseless=True)
    state_scale = tf.maximum(tf.math.reduce_std(states, axis=[1, 2]), _SCALE_FLOOR)
    action_scale = tf.maximum(tf.math.reduce_std(actions, axis=[1, 2, 3]), _SCALE_FLOOR)
    product = tf.abs(states[..., groups_lib.GRADIENT_INDEX] * actions[..., 0])  # [C, P, T]
    weights = (t - tf.range(t, dtype=_F64)) / t
    typical = tf.reduce_mean(product * weights, axis=[1, 2])
    self.state_scale.assign(state_scale)
    self.action_scale.assign(action_scale)
    self.cost_scale.assign(tf.where(typical > 0, (state_scale[:, 0] * action_scale)
                                    / tf.maximum(typical, _SCALE_FLOOR), tf.ones_like(typical)))
    self.psi_K.assign(self.psi_K * self.state_scale[:, None, None, :]
                      / self.action_scale[:, None, None, None])
    self.psi_G.assign(tf.fill(tf.shape(self.psi_G), tf.constant(config.init_noise ** 2, _F64)))
    variance = tf.reduce_mean(tf.reshape((config.init_noise * action_scale) ** 2,
                                         [config.num_conditions, g]), axis=0)
    self.policy_log_variance.assign(tf.math.log(variance))
    self.initialized.assign(True)

  # -------------------------------------------------------------- policy --
  def _policy_mean(self, observations):
    """mu_pi along the tracked coordinates' trajectories, scaled: [C, P, T, F] -> [C, P, T, 1]."""
    means = tf.cast(self._policy_means_fn(self.meta_vars, tf.cast(observations, tf.float32)),
                    _F64)
    return (means / self.action_scale[:, None, None])[..., None]

  def _policy_variance_scaled(self):
    """Sigma_pi per LQG in its action units, [C, 1]."""
    variance = tf.tile(tf.exp(self.policy_log_variance), [self.config.num_conditions])
    return (variance / self.action_scale ** 2)[:, None]

  def _freeze_normalizer(self, observations):
    """Standardises the observation with these statistics, keeping the policy's function.

    With mean m and std s, z_old = s z_new + m: the LSTM input rows and the
    skip weights are multiplied by s, and m times them moves into the biases.
    """
    flat = tf.reshape(tf.cast(observations, _F64), [-1, observations.shape[-1]])
    mean = tf.reduce_mean(flat, axis=0)
    std = tf.maximum(tf.math.reduce_std(flat, axis=0), 1e-3)
    features = int(mean.shape[0])
    lstm, out = self.meta_vars["lstm"], self.meta_vars["output"]
    kernel = tf.cast(lstm["kernel"], _F64)
    rows = kernel[:features]
    lstm["bias"].assign(tf.cast(tf.cast(lstm["bias"], _F64)
                                + tf.linalg.matvec(rows, mean, transpose_a=True), tf.float32))
    lstm["kernel"].assign(tf.cast(tf.concat([std[:, None] * rows, kernel[features:]], 0),
                                  tf.float32))
    skip = tf.cast(out["skip"], _F64)
    out["bias"].assign(tf.cast(tf.cast(out["bias"], _F64)
                               + tf.linalg.matvec(skip, mean, transpose_a=True), tf.float32))
    out["skip"].assign(tf.cast(std[:, None] * skip, tf.float32))
    self.meta_vars["normalizer"]["mean"].assign(tf.cast(mean, tf.float32))
    self.meta_vars["normalizer"]["std"].assign(tf.cast(std, tf.float32))
    self.normalizer_frozen.assign(True)

  def _theta_loss(self, observations, targets, precisions, weights, batch):
    """Weighted squared error of the policy's means: LSTM sequences [B, T, F] -> [B, T], or
    gps_general's steps on the S recorded coordinates of B (trajectory, group) pairs
    [B, S, T, F] -> [B, S, T] (its RMS normalisation runs over S)."""
    del batch
    if observations.shape.rank == 3:
      means = self.rule.sequence_mean(self.meta_vars, observations)
    else:
      means = self.rule.step(self.meta_vars, observations, axis=[1])
    error = targets - means
    return 0.5 * tf.reduce_mean(weights * precisions * tf.square(error))

  def _policy_step(self, iteration, inner, observations, states, policy):
    """The supervised theta step toward psi (GPS.md 3.5) over all LQGs; returns its loss."""
    config = self.config
    if not bool(self.normalizer_frozen) and "normalizer" in self.meta_vars:
      self._freeze_normalizer(observations)
    mu_psi = global_policy.local_means(policy, states)
    targets, precisions, weights = policy_update.policy_targets(mu_psi, policy.G, self.lam,
                                                                self.nu)
    weights = policy_update.normalise_weights(weights)  # [C, P, T]
    action_scale = self.action_scale[:, None, None]
    raw_targets = targets[..., 0] * action_scale  # [C, P, T]
    raw_precision = precisions[..., 0, 0] / action_scale ** 2  # [C, P, T]
    # Sigma_pi per group: sum w / sum w P over the group's (condition, sample, step) entries.
    m, g = config.num_conditions, self.num_groups
    w_groups = tf.reshape(weights, [m, g, -1])
    p_groups = tf.reshape(raw_precision, [m, g, -1])
    variance = tf.reduce_sum(w_groups, axis=[0, 2]) / tf.reduce_sum(w_groups * p_groups,
                                                                    axis=[0, 2])
    self.policy_log_variance.assign(tf.math.log(variance))
    # Weighted precisions relative to their mean, so the weight decay keeps its meaning across
    # nets (the fit's per-entry weights are then 1).
    per_sequence = weights * raw_precision
    per_sequence = per_sequence / tf.reduce_mean(per_sequence)
    count = int(raw_targets.shape[0] * raw_targets.shape[1])
    # Units of the fit: sequences (gps_lstm), or a trajectory's S recorded coordinates of a
    # group, over which gps_general's step is RMS-normalised.
    unit = [] if self.rule.name == "gps_lstm" else [config.coordinates_per_group]
    count //= config.coordinates_per_group if unit else 1
    obs = tf.reshape(tf.cast(observations, tf.float32), [count] + unit + [config.horizon, -1])
    rng = np.random.default_rng([config.seed, iteration, inner])
    batch = max(1, config.policy_batch_size // (unit[0] if unit else 1))  # sequences per step
    indices = rng.integers(0, count, size=(config.policy_steps, min(batch, count)))
    precisions = tf.cast(tf.reshape(per_sequence, [count] + unit + [-1]), tf.float32)
    return float(self._train_policy_fn(
        obs, tf.cast(tf.reshape(raw_targets, [count] + unit + [-1]), tf.float32), precisions,
        tf.ones_like(precisions), tf.constant(indices, tf.int32)))

  def _linearize(self, states, policy_means):
    return dynamics_lib.linearize_policy(*_mirrored(states, policy_means),
                                         self._policy_variance_scaled(),
                                         regularization=self.config.policy_regularization)

  def _kl_to_policy(self, policy, states, policy_means):
    """KL(psi_t(.|s_i) || pi(.|o_i)) per sample (1-D Gaussians), [C, P, T]."""
    mu_psi = global_policy.local_means(policy, states)[..., 0]
    var_psi = policy.G[:, None, :, 0, 0]
    var_pi = self._policy_variance_scaled()[:, :, None]
    return 0.5 * (tf.math.log(var_pi / var_psi) + (var_psi + tf.square(mu_psi
                                                                         - policy_means[..., 0]))
                  / var_pi - 1.0)

  # ----------------------------------------------------------- iteration --
  def _eta_search(self, cost, dyn, sampled, pi_lin):
    config = self.config
    epsilon = config.horizon * config.kl_step * self.step_mult.numpy()
    result = lqr.eta_search(cost, dyn, sampled, pi_lin, self.lam, self.nu, epsilon,
                            self.eta.numpy(), min_eta=config.min_eta, max_eta=config.max_eta,
                            max_iterations=config.eta_iterations)
    self.eta.assign(result.eta)
    return result.policy, result.kl

  def _lqg_objective(self, policy, model):
    return self._lqg_objective_fn(policy, model)

  def _policy_std_mean(self) -> float:
    return float(tf.reduce_mean(tf.exp(0.5 * self.policy_log_variance)))

  def _local_models(self, iteration, sampled):
    """Group rollouts under psi; dynamics, cost and pi_lin per (condition, group) LQG."""
    config = self.config
    raw_states, raw_actions, observations, losses, curvature = self._samples(iteration + 1,
                                                                             sampled)
    states, actions = self._scaled(raw_states, raw_actions)
    dyn = dynamics_lib.fit_dynamics(*_mirrored(states, actions),
                                    regularization=config.dynamics_regularization)
    cost = groups_lib.group_cost(curvature, self.cost_scale, config.horizon)
    policy_means = self._policy_mean(observations)
    pi_lin = self._linearize(states, policy_means)
    return states, observations, dyn, cost, policy_means, pi_lin, losses

  def trainer_config(self) -> dict:
    return {"gps": run_directory.config_dict(self.config), "coordinate_groups": True}


def _mirrored(states, actions):
  """The samples and their sign-flipped copies, [C, 2P, ...] (a symmetry prior).

  Flipping the sign of a coordinate's gradient history flips the step a
  sensible optimizer takes; fitting on both halves makes the tied dynamics
  and the policy linearisation odd (no offsets), so the LQR cannot learn a
  constant drift shared by all coordinates of a group.
  """
  return tf.concat([states, -states], axis=1), tf.concat([actions, -actions], axis=1)
