"""The differentiable inner loop shared by meta-training and evaluation.

An unroll runs a rule on one problem for `num_steps` steps inside a
`tf.while_loop` (which traces in about a second, where a Python loop of the
same length takes many), carrying the optimizee parameters, the rule state and
the step counter in an `UnrollState`, so consecutive truncations of the same
trajectory continue where the previous one stopped.

For step t = 0 .. num_steps - 1 of a truncation it computes the losses at the
current parameters theta_t on the batch of step t, their gradient, and
theta_{t+1} = theta_t + lr * rule.apply(...). It returns the mean losses before
every update, `losses[t] = f(theta_t)`, and `final_loss = f(theta_T)` on the
batch of step T, so a meta-loss can weigh every update's result.

Everything is differentiable with respect to the meta-parameters. By default
the optimizee gradient is a constant for the meta-gradient (second derivatives
dropped, as in Andrychowicz et al.); `second_derivatives=True` keeps them.
Rules that use the objective value (`rule.uses_loss`) get the mean loss at
theta_t, treated like the gradient.
"""

from typing import NamedTuple

import tensorflow as tf

from keras_l2o import step as step_lib


class UnrollState(NamedTuple):
  """Where a trajectory is: parameters, rule state per parameter, steps taken."""
  params: list
  rule_state: list
  step: tf.Tensor  # int64 scalar: updates applied so far in this trajectory


def init_state(rule, family, tensors, dtype=tf.float32) -> UnrollState:
  """The state at the start of a trajectory on problem `tensors` of `family`."""
  params = [tf.cast(p, dtype) for p in family.init_params(tensors)]
  return UnrollState(params, [rule.init_state(p) for p in params], tf.constant(0, tf.int64))


def losses_after_updates(losses, final_loss):
  """`[f(theta_1), ..., f(theta_T)]` from `unroll`'s outputs (drops f(theta_0))."""
  return tf.concat([losses[1:], final_loss[None]], axis=0)


def losses_and_grads(family, tensors, params, batch):
  """The mean loss at `params` on `batch` and the gradient of the summed losses.

  Args:
    family: the `ProblemFamily`.
    tensors: the problem's tensors.
    params: list of parameter tensors.
    batch: the minibatch (`family.batch(tensors, step)`).

  Returns:
    `(mean_loss, grads)`, `grads` a list like `params`.
  """
  with tf.GradientTape() as tape:
    tape.watch(params)
    losses = family.losses(tensors, params, batch)
    total = tf.reduce_sum(losses)
  grads = tape.gradient(total, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  return tf.reduce_mean(losses), grads


def rule_steps(rule, meta_params, grads, params, rule_state, step, learning_rate, loss,
               second_derivatives=False):
  """One optimizer step of `rule` on every parameter: the body of an unroll.

  Args:
    rule: a `keras_l2o.rules.Rule`.
    meta_params: its meta-parameters.
    grads: the gradients at `params` (list).
    params: the parameters theta_t (list).
    rule_state: the rule's state per parameter (list).
    step: int64 scalar, updates applied so far (the update computed is `step + 1`).
    learning_rate: scalar, or a callable of `step`.
    loss: the objective at `params` (for rules that use it).
    second_derivatives: keep the dependence of `grads` and `loss` on the
      meta-parameters.

  Returns:
    `(new_params, new_rule_state)`, lists.
  """
  if not second_derivatives:
    grads = [tf.stop_gradient(g) for g in grads]
    loss = tf.stop_gradient(loss)  # an input of the rule, like the gradient
  # A schedule is evaluated at the number of steps taken, as Keras does.
  lr = learning_rate(step) if callable(learning_rate) else learning_rate
  new_params, new_rule_state = [], []
  for g, p, s in zip(grads, params, rule_state):
    p, s = step_lib.functional_step(rule, meta_params, g, p, s, step + 1, lr, loss=loss)
    new_params.append(p)
    new_rule_state.append(s)
  return new_params, new_rule_state


def unroll(rule, meta_params, family, tensors, state: UnrollState, num_steps: int,
           learning_rate=1.0, second_derivatives: bool = False):
  """Runs `num_steps` optimizer steps of `rule` on one problem.

  Args:
    rule: a `keras_l2o.rules.Rule`.
    meta_params: its meta-parameters (tensors or variables; differentiable).
    family: the `ProblemFamily` the problem was drawn from.
    tensors: the problem's tensors (`Problem.tensors`).
    state: where the trajectory is (`init_state` for a fresh one).
    num_steps: number of steps (a Python int).
    learning_rate: scalar multiplying the rule's output, or a callable of the
      step count (e.g. a `keras.optimizers.schedules.LearningRateSchedule`).
    second_derivatives: keep the dependence of the optimizee gradient on the
      meta-parameters (exact meta-gradient; slower).

  Returns:
    `(losses, final_loss, new_state)`: `losses` `[num_steps]` with the mean loss
    before each update, `final_loss` the loss after the last one, and the
    state to continue from.
  """
  state = UnrollState(list(state.params), list(state.rule_state), state.step)

  def body(i, params, rule_state, history):
    step = state.step + tf.cast(i, tf.int64)
    loss, grads = losses_and_grads(family, tensors, params, family.batch(tensors, step))
    new_params, new_rule_state = rule_steps(rule, meta_params, grads, params, rule_state, step,
                                            learning_rate, loss, second_derivatives)
    return i + 1, new_params, new_rule_state, history.write(i, loss)

  dtype = state.params[0].dtype
  history = tf.TensorArray(dtype, size=num_steps, element_shape=[])
  _, params, rule_state, history = tf.while_loop(
      lambda i, *_: i < num_steps, body, (tf.constant(0), state.params, state.rule_state, history),
      maximum_iterations=num_steps)
  end = state.step + num_steps
  final_loss = family.loss(tensors, params, family.batch(tensors, end))
  return history.stack(), final_loss, UnrollState(params, rule_state, end)
