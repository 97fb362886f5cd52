"""Guided policy search (BADMM) meta-training of the Li & Malik policy (GPS.md section 3).

One GPS iteration, for M training problems ("conditions", x0 fixed per
problem) with local linear-Gaussian policies psi_m over the P1 state
(`state_layout`; d + H + d (2 H + 1) entries) and the global policy pi, the
`gps_policy` rule (its mean is the optimizer's step):

    for m: sample N trajectories from psi_m (the previous iteration's are dropped)
    for m: refit the GMM dynamics prior; fit F_t, f_t, W_t (fit_dynamics)
    for m: expand the cost c(s_t) = f(x_t) (l_x = grad f, l_xx = hess f on x_t);
           linearise pi (linearize_policy with a GMM policy prior)
    if itr >= 1: adapt step_mult from predicted vs actual improvement (step_size)
    for inner in range(inner_iterations):
      if itr > 0 or inner > 0:
        supervised pi update toward psi (theta_loss, Adam; diagonal variance)
        re-linearise pi; lambda update; nu update on the last inner iteration
      psi_m <- eta_search (modified LQR, KL(psi_new || psi_sampled) ~ T kl_step step_mult)

The initial psi_m is truncated momentum (`momentum_controller`) with the rate
and momentum that end lowest on noiseless rollouts of problem m
(`grid_search_momentum`). The initial pi is the rule's initialisation (mean
-init_step * g). At the first policy update the observation statistics are
frozen into the rule's `normalizer` meta-parameters and folded into the first
layer so that the policy's function is unchanged by it.

The defaults and their reasons are `trainers.gps.config`'s.

Checkpointing: the meta-parameters and their Adam slots, the best
meta-parameters, per condition psi (K, k, G), lambda, nu, eta, step_mult, the
LQG objectives the next step adjustment needs, the GMM priors with their
sample buffers, and the counters are all variables in one `tf.train.Checkpoint`
written after every iteration. All randomness is seeded from `config.seed`
(stateless draws keyed by iteration and condition), so a killed run resumes
and ends exactly as an uninterrupted one.

Example:

  >>> import tempfile, keras_l2o
  >>> from keras_l2o import problems
  >>> from trainers.gps import trainer as gps_trainer
  >>> config = gps_trainer.GPSConfig(iterations=1, num_conditions=2, samples_per_condition=5,
  ...                                horizon=6, policy_steps=5, validation_problems=2)
  >>> result = gps_trainer.GPSTrainer(
  ...     keras_l2o.rules.get("gps_policy", dimension=4, history=3),
  ...     problems.get("logistic_regression", horizon=6), config, tempfile.mkdtemp()).run()
  >>> result["iterations"]
  1
"""

import math
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from keras_l2o import run_directory
from keras_l2o import unroll as unroll_lib
from .. import base
from .. import loop
from . import config as gps_config
from . import dynamics as dynamics_lib
from . import global_policy
from . import initial_controller
from . import lqr
from . import policy_update
from . import rollouts
from . import state_layout as layout_lib
from . import step_size
from . import types

NU_MODES = gps_config.NU_MODES
_F64 = tf.float64


GPSConfig = gps_config.GPSConfig



def _slice(structure, start, stop):
  return tf.nest.map_structure(lambda v: None if v is None else v[start:stop], structure)


def _concat(structures):
  return tf.nest.map_structure(lambda *values: tf.concat(values, axis=0), *structures)


class GPSTrainer(global_policy.GlobalPolicy, loop.MetaTrainer):
  """Meta-trains the `gps_policy` rule on a Li & Malik problem family by GPS.

  Args:
    rule: the `gps_policy` rule (or its name); its `dimension` must equal the
      family's number of parameters.
    family: a full-batch `ProblemFamily` with one flat parameter vector
      (`logistic_regression`, `robust_linear_regression`, `two_layer_net`).
    config: a `GPSConfig`.
    save_dir: run directory (see `keras_l2o.run_directory`); created if missing.
    extra_config: more JSON-serialisable entries for `config.json`.
    strategy: a `tf.distribute.Strategy` of one replica (default: the current one).

  Raises:
    ValueError: for a rule other than `gps_policy`, a family that is not
      full-batch with one flat parameter vector of the rule's dimension, or an
      invalid config.
  """

  name = section = "gps"
  step_name = "iterations"
  step_label = "GPS iteration"
  step_variable = "iteration"
  early_stopping = False  # (GPS runs have no patience; their checkpoints keep their keys)
  max_to_keep = 2
  log_every = 1
  checkpoint_every = 1

  def __init__(self, rule, family, config, save_dir: str, extra_config: Optional[dict] = None,
               strategy=None):
    self._init_run(rule, family, config, save_dir, strategy, extra_config)
    self._problems = {}
    self._check_and_lay_out()
    self._init_meta(self.rule.init_meta_params(config.seed))
    self.iteration = self.step_counter
    self._trainable = self._trainable_variables()
    self.policy_optimizer = keras.optimizers.Adam(config.policy_learning_rate)
    self.policy_optimizer.build(self._trainable)
    self._init_checkpoint(policy_optimizer=self.policy_optimizer, **self._make_gps_state())
    self._make_functions()

  @property
  def total_steps(self) -> int:
    return self.config.iterations

  def _check_and_lay_out(self):
    """Checks the rule and the family; sets the state layout and its sizes."""
    family = self.family
    if self.rule.name != "gps_policy":
      raise ValueError(f"GPS meta-trains the rule 'gps_policy' (a Gaussian policy with a "
                       f"mean network); received rule {self.rule.name!r}.")
    if not getattr(family, "full_batch", False):
      raise ValueError(f"GPS needs a full-batch (noiseless) problem family such as "
                       f"logistic_regression; received {type(family).__name__} "
                       "(full_batch is not True).")
    problem = family.sample("train", 0)
    shapes = [tuple(p.shape) for p in family.init_params(problem.tensors)]
    if shapes != [(self.rule.dimension,)]:
      raise ValueError(f"GPS needs one flat parameter vector of {self.rule.dimension} entries "
                       f"(the rule's dimension); the family's problems have parameter shapes "
                       f"{shapes}. Set the rule's dimension to the family's parameter count.")
    self.d = self.rule.dimension
    self.layout = layout_lib.state_layout(self.d, self.rule.history)
    self.d_x, self.d_u = self.layout.size, self.d

  def _trainable_variables(self):
    return [v for path, v in global_policy.paths(self.meta_vars) if path[0].startswith(("hidden_", "output"))]

  def _make_gps_state(self) -> dict:
    """The BADMM state of the M conditions (checkpointed), keyed by checkpoint name."""
    config = self.config
    m, t = config.num_conditions, config.horizon
    zeros = lambda *shape: tf.Variable(tf.zeros(shape, _F64), trainable=False)  # noqa: E731
    self.psi_K = zeros(m, t, self.d_u, self.d_x)  # pylint: disable=invalid-name
    self.psi_k = zeros(m, t, self.d_u)
    self.psi_G = zeros(m, t, self.d_u, self.d_u)  # pylint: disable=invalid-name
    self.lam = zeros(m, t, self.d_u)
    self.nu = tf.Variable(tf.fill([m, t], tf.constant(config.init_pol_wt, _F64)),
                          trainable=False)
    self.eta = tf.Variable(tf.ones([m], _F64), trainable=False)
    self.step_mult = tf.Variable(tf.ones([m], _F64), trainable=False)
    # J(psi_sampled; model) and J(psi_new; model) of the last iteration, for 3.6.
    self.previous_objectives = zeros(m, 2)
    self.has_previous = tf.Variable(False, trainable=False)
    self.normalizer_frozen = tf.Variable(False, trainable=False)
    self.initialized = tf.Variable(False, trainable=False)
    self.initial_momentum = zeros(m, 2)  # (rate, momentum) chosen per condition
    prior_args = dict(max_clusters=config.max_clusters,
                      min_samples_per_cluster=config.min_samples_per_cluster,
                      max_samples=config.max_samples, strength=config.prior_strength,
                      em_iterations=config.em_iterations)
    self.dynamics_priors = [dynamics_lib.DynamicsPrior(seed=config.seed * 1009 + i, **prior_args)
                            for i in range(m)]
    self.policy_priors = [dynamics_lib.PolicyPrior(seed=config.seed * 1009 + i, **prior_args)
                          for i in range(m)]
    return dict(
        psi_K=self.psi_K, psi_k=self.psi_k, psi_G=self.psi_G, lam=self.lam, nu=self.nu,
        eta=self.eta, step_mult=self.step_mult, previous_objectives=self.previous_objectives,
        has_previous=self.has_previous, normalizer_frozen=self.normalizer_frozen,
        initialized=self.initialized, initial_momentum=self.initial_momentum,
        dynamics_priors={str(i): p for i, p in enumerate(self.dynamics_priors)},
        policy_priors={str(i): p for i, p in enumerate(self.policy_priors)})

  def _make_functions(self):
    self._rollout_fn = tf.function(self._rollout)
    self._train_policy_fn = tf.function(self._train_policy)
    self._evaluate_fn = tf.function(self._evaluate_problem)
    self._lqg_objective_fn = tf.function(step_size.lqg_objective)

  # ------------------------------------------------------------ problems --
  def _problem(self, split, index):
    key = (split, int(index))
    if key not in self._problems:
      self._problems[key] = self.family.sample(split, int(index))
    return self._problems[key]

  def _rollout(self, tensors, noise, gains, offsets):
    mean = rollouts.linear_gaussian_mean(types.LinearGaussianPolicy(gains, offsets, None))
    return rollouts.rollout(self.family, tensors, noise, mean, self.rule.history)

  def psi(self) -> types.LinearGaussianPolicy:
    """The current local policies, batch [M]."""
    return types.LinearGaussianPolicy(tf.identity(self.psi_K), tf.identity(self.psi_k),
                                      tf.identity(self.psi_G))

  # ------------------------------------------------------ initial policy --
  def _initialize_local_policies(self):
    """psi_m <- the best truncated-momentum controller of condition m (GPS.md 3.7)."""
    config = self.config
    pairs = [(r, mo) for r in config.momentum_rates for mo in config.momentum_values]
    controllers = [initial_controller.momentum_controller(
        config.horizon, self.d, self.rule.history, r, mo, config.init_variance)
                   for r, mo in pairs]
    gains = tf.stack([c.K for c in controllers])
    offsets = tf.stack([c.k for c in controllers])
    noise = tf.zeros([len(pairs), config.horizon, self.d_u], _F64)
    chosen = []
    for m in range(config.num_conditions):
      out = self._rollout_fn(self._problem("train", m).tensors, noise, gains, offsets)
      finals = dict(zip(pairs, out.losses[:, -1].numpy()))
      rate, momentum, value = initial_controller.grid_search_momentum(
          lambda r, mo: finals[(r, mo)], config.momentum_rates, config.momentum_values)
      logging.info("Condition %d: initial momentum controller rate=%g momentum=%g "
                   "(final objective %.5g)", m, rate, momentum, value)
      chosen.append(initial_controller.momentum_controller(
          config.horizon, self.d, self.rule.history, rate, momentum, config.init_variance))
      self.initial_momentum[m].assign([rate, momentum])
    policy = global_policy.stack(chosen)
    self.psi_K.assign(policy.K)
    self.psi_k.assign(policy.k)
    self.psi_G.assign(policy.G)
    self.initialized.assign(True)

  # ------------------------------------------------------------ sampling --
  def _sample(self, iteration, policy):
    """N noisy trajectories per condition from `policy`; a `Rollout` batched [M, N]."""
    config = self.config
    outs = []
    chol = tf.linalg.cholesky(policy.G)  # [M, T, dU, dU]
    for m in range(config.num_conditions):
      eps = tf.random.stateless_normal(
          [config.samples_per_condition, config.horizon, self.d_u],
          seed=[config.seed, iteration * 100003 + m], dtype=_F64)
      noise = tf.linalg.matvec(chol[m], eps)
      outs.append(self._rollout_fn(self._problem("train", m).tensors, noise,
                                   policy.K[m:m + 1], policy.k[m:m + 1]))
    return global_policy.stack(outs)

  # ---------------------------------------------------------- LQR, eta --
  def _eta_search(self, cost, dyn, sampled, pi_lin):
    config = self.config
    epsilon = config.horizon * config.kl_step * self.step_mult.numpy()
    parts, etas, kls = [], [], []
    for start in range(0, config.num_conditions, config.condition_batch):
      stop = min(start + config.condition_batch, config.num_conditions)
      result = lqr.eta_search(
          _slice(cost, start, stop), _slice(dyn, start, stop), _slice(sampled, start, stop),
          _slice(pi_lin, start, stop), self.lam[start:stop], self.nu[start:stop],
          epsilon[start:stop], self.eta.numpy()[start:stop], min_eta=config.min_eta,
          max_eta=config.max_eta, max_iterations=config.eta_iterations)
      parts.append(result.policy)
      etas.append(result.eta)
      kls.append(result.kl)
    self.eta.assign(np.concatenate(etas))
    return _concat(parts), np.concatenate(kls)

  def _lqg_objective(self, policy, model):
    config = self.config
    values = []
    for start in range(0, config.num_conditions, config.condition_batch):
      stop = min(start + config.condition_batch, config.num_conditions)
      values.append(self._lqg_objective_fn(_slice(policy, start, stop),
                                           _slice(model, start, stop)))
    return tf.concat(values, axis=0)

  # ----------------------------------------------------------- iteration --
  def _local_models(self, iteration, sampled):
    """Samples psi and fits the local models (GPS.md 3.1-3.4).

    Returns:
      `(states, observations, dynamics, cost, policy_means, pi_lin, losses)`
      batched over the LQGs (here: the conditions); `losses` [M, N, T + 1].
    """
    config = self.config
    samples = self._sample(iteration, sampled)
    states, actions = samples.states, samples.actions  # [M, N, T, dX], [M, N, T, dU]
    observations = states[..., self.layout.observation]
    dyn = []
    for m in range(config.num_conditions):
      self.dynamics_priors[m].update(states[m], actions[m])
      dyn.append(dynamics_lib.fit_dynamics(states[m], actions[m], prior=self.dynamics_priors[m],
                                           regularization=config.dynamics_regularization))
    dyn = global_policy.stack(dyn)
    cost = rollouts.expand_cost(samples, self.d, self.d_u)
    policy_means = self._policy_mean(observations)
    for m in range(config.num_conditions):
      self.policy_priors[m].update(states[m], policy_means[m])
    pi_lin = self._linearize(states, policy_means)
    return states, observations, dyn, cost, policy_means, pi_lin, samples.losses

  def _policy_std_mean(self) -> float:
    return float(tf.reduce_mean(tf.sqrt(self._policy_variance())))

  def _iteration(self, iteration) -> dict:
    """One GPS iteration (module docstring); returns its metrics."""
    config = self.config
    sampled = self.psi()
    states, observations, dyn, cost, policy_means, pi_lin, losses = self._local_models(
        iteration, sampled)
    record = {}
    if bool(self.has_previous):
      model = step_size.LQGModel(dyn, cost, pi_lin, tf.identity(self.nu))
      current = self._lqg_objective(sampled, model)
      previous = self.previous_objectives[:, 0]
      predicted = previous - self.previous_objectives[:, 1]
      actual = previous - current
      self.step_mult.assign(step_size.adjust_step_mult(
          predicted, actual, self.step_mult, config.min_step_mult, config.max_step_mult))
    theta_losses = []
    policy = sampled
    for inner in range(config.inner_iterations):
      if iteration > 0 or inner > 0:
        theta_losses.append(self._policy_step(iteration, inner, observations, states, policy))
        policy_means = self._policy_mean(observations)
        pi_lin = self._linearize(states, policy_means)
        self.lam.assign(policy_update.update_lambda(
            self.lam, self.nu, policy.G, global_policy.local_means(policy, states), policy_means,
            config.policy_dual_rate))
        if inner == config.inner_iterations - 1:
          self.nu.assign(policy_update.update_nu(
              self.nu, self._kl_to_policy(policy, states, policy_means), config.nu_mode))
      policy, kl = self._eta_search(cost, dyn, sampled, pi_lin)
    model = step_size.LQGModel(dyn, cost, pi_lin, tf.identity(self.nu))
    self.previous_objectives.assign(tf.stack([self._lqg_objective(sampled, model),
                                              self._lqg_objective(policy, model)], axis=1))
    self.has_previous.assign(True)
    self.psi_K.assign(policy.K)
    self.psi_k.assign(policy.k)
    self.psi_G.assign(policy.G)
    kl_pi = self._kl_to_policy(policy, states, self._policy_mean(observations))
    record.update({
        "meta_loss": float(tf.reduce_mean(losses[..., 1:])),
        "sample_final_loss": float(tf.reduce_mean(losses[..., -1])),
        "theta_loss": float(np.mean(theta_losses)) if theta_losses else None,
        "kl_to_sampled": float(np.mean(kl)), "kl_psi_pi": float(tf.reduce_mean(kl_pi)),
        "eta_mean": float(np.exp(np.mean(np.log(self.eta.numpy())))),
        "step_mult_mean": float(tf.reduce_mean(self.step_mult)),
        "nu_mean": float(tf.reduce_mean(self.nu)),
        "policy_std_mean": self._policy_std_mean()})
    return record

  # ---------------------------------------------------------- validation --
  def _evaluate_problem(self, tensors, state):
    losses, final_loss, _ = unroll_lib.unroll(self.rule, self.meta_vars, self.family, tensors,
                                              state, self.config.horizon,
                                              learning_rate=self.config.learning_rate)
    return tf.reduce_mean(unroll_lib.losses_after_updates(losses, final_loss))

  def validate(self) -> float:
    """Mean objective after each of `horizon` rule-mean updates, over held-out problems."""
    values = []
    for index in range(self.config.validation_problems):
      tensors = self._problem("validation", index).tensors
      state = unroll_lib.init_state(self.rule, self.family, tensors)
      values.append(float(self._evaluate_fn(tensors, state)))
    value = float(np.mean(values))
    return value if math.isfinite(value) else float("inf")

  # ----------------------------------------------------------------- run --
  def start(self):
    self._initialize_local_policies()

  def meta_step(self, step: int) -> dict:
    return self._iteration(step)

  def exports(self) -> dict:
    """`final/` is `best/` with `config.restore_best`, else `last/` (the last iteration's)."""
    final = self.best_vars if self.config.restore_best else self.meta_vars
    return {"final": final, "best": self.best_vars, "last": self.meta_vars}

  def summary_extras(self) -> dict:
    return {"last_meta_params_sha256": base.digest(self.meta_vars)}

  def trainer_config(self) -> dict:
    return {"gps": run_directory.config_dict(self.config)}
