"""The global policies coordinate-group GPS trains, and what differs between them.

Two coordinatewise policies (GPS.md section 2) are trained by the same BADMM
loop of `group_trainer.GroupGPSTrainer`:

* `gps_lstm`, Li & Malik's P2 policy: an LSTM per coordinate on the P2
  observation (relative loss change, normalised gradient, step ratio), its
  inputs standardised with statistics frozen at the first supervised step;
* `gps_general` (issue 22): an MLP per coordinate on features normalised by
  their RMS over the tensor, whose step is RMS-normalised over the tensor
  (`keras_l2o.rules.gps_general`). It has no memory, so its mean along a
  trajectory is its step at each time; the RMS over the tensor is estimated
  by the RMS over the group's recorded coordinates (all of them when
  `coordinates_per_group` covers the group). Its inputs are already
  normalised: no frozen normaliser.

This module holds the three places where they differ: the observation the
rollout records (`Observer`), the policy's mean on recorded trajectories
(`policy_means`) and which meta-parameters the supervised fit trains
(`trainable_paths`).
"""

from typing import Callable, NamedTuple

import tensorflow as tf

from keras_l2o.rules import coordinate_policy
from keras_l2o.rules import gps_general

RULES = ("gps_lstm", "gps_general")


class Observer(NamedTuple):
  """How a rollout builds the policy's observation of every coordinate.

  Attributes:
    init: `dim -> state`, the observation's own state for `dim` flat coordinates.
    observe: `(loss, previous_loss, has_previous, grad, previous_grad,
      previous_step, step_before, state) -> (observations [dim, F], state)` on
      the flat parameter vector.
  """
  init: Callable
  observe: Callable


def observer(rule, sizes) -> Observer:
  """The `Observer` of `rule` for a net whose groups have `sizes` coordinates (flat, in order).

  Raises:
    ValueError: for a rule coordinate-group GPS does not train.
  """
  if rule.name == "gps_lstm":
    def observe_p2(loss, previous_loss, has_previous, grad, previous_grad, previous_step,
                   step_before, state):
      return coordinate_policy.observe(loss, previous_loss, has_previous, grad, previous_grad,
                                       previous_step, step_before), state
    return Observer(lambda dim: tf.zeros([1]), observe_p2)
  if rule.name == "gps_general":
    sizes = list(sizes)

    def init(dim):  # the rule's state (GPSGeneralState, or with `anneal` its peak too)
      return rule.state_type(*[tf.zeros([dim, e] if e else [dim])
                               for e in rule.trailing_state_dims()])

    def observe_general(loss, previous_loss, has_previous, grad, previous_grad, previous_step,
                        step_before, state):
      del loss, previous_loss, has_previous, previous_grad, previous_step, step_before
      fields = [tf.split(f, sizes) for f in state]
      outs = [gps_general.observe(g, rule.state_type(*[f[i] for f in fields]), [0])
              for i, g in enumerate(tf.split(grad, sizes))]
      features = tf.concat([f for f, _ in outs], 0)
      return features, rule.state_type(*[tf.concat(list(f), 0)
                                         for f in zip(*[s for _, s in outs])])
    return Observer(init, observe_general)
  raise ValueError(f"Coordinate-group GPS trains the rules {list(RULES)}; received rule "
                   f"{rule.name!r}.")


def policy_means(rule, meta_params, observations, per_group: int):
  """The policy's means along recorded trajectories: `[C, P, T, F] -> [C, P, T]`.

  Args:
    rule: a rule of `RULES`.
    meta_params: its meta-parameters.
    observations: recorded observations; P = B * per_group (sample-major).
    per_group: S, the recorded coordinates of a group per trajectory.
  """
  shape = tf.shape(observations)
  if rule.name == "gps_lstm":
    flat = tf.reshape(observations, [-1, shape[2], shape[3]])
    return tf.reshape(rule.sequence_mean(meta_params, flat), shape[:3])
  grouped = tf.reshape(observations, [shape[0], -1, per_group, shape[2], shape[3]])
  return tf.reshape(rule.step(meta_params, grouped, axis=[2]), shape[:3])


def trainable_paths(rule) -> tuple:
  """Top-level meta-parameter names that the supervised fit trains."""
  if rule.name == "gps_lstm":
    return ("lstm", "output")
  return tuple(rule.meta_param_shapes())
