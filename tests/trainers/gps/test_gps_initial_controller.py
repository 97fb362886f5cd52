"""The initial momentum controller and the P1 state layout (GPS.md 3.7, section 5 item 9)."""


import numpy as np
import tensorflow as tf

from trainers.gps import initial_controller
from trainers.gps import state_layout


def _state(location, rel_changes, gradients, deltas):
  """Assembles a P1 state by hand: gradients [H + 1, d] oldest first, the last one current."""
  return np.concatenate([location, rel_changes, gradients[:-1].ravel(), gradients[-1], deltas.ravel()])


class StateLayoutTest(tf.test.TestCase):

  def test_p1_sizes_and_blocks(self):
    layout = state_layout.state_layout(4, 25)
    self.assertEqual((layout.size, layout.observation), (233, slice(4, 233)))
    self.assertEqual(state_layout.state_layout(4, 25, with_location=False).size, 229)
    # The blocks tile [0, size) in order, without gaps or overlaps.
    spans = [layout.location, layout.relative_changes, layout.past_gradients, layout.current_gradient,
             layout.past_deltas]
    self.assertEqual([(s.start, s.stop) for s in spans],
                     [(0, 4), (4, 29), (29, 129), (129, 133), (133, 233)])
    self.assertEqual(layout.past_gradient(0), slice(29, 33))
    self.assertEqual(layout.past_gradient(24), slice(125, 129))
    self.assertEqual(layout.past_delta(24), slice(229, 233))
    # Matches the hand assembly.
    d, h = 2, 3
    gradients = np.arange(1., 9.).reshape(h + 1, d)
    state = _state(np.array([-1., -2.]), np.array([.1, .2, .3]), gradients, -np.arange(1., 7.).reshape(h, d))
    layout = state_layout.state_layout(d, h)
    self.assertAllEqual(state[layout.current_gradient], [7., 8.])
    self.assertAllEqual(state[layout.past_gradient(0)], [1., 2.])
    self.assertAllEqual(state[layout.relative_changes], [.1, .2, .3])
    self.assertAllEqual(state[layout.past_delta(2)], [-5., -6.])
    with self.assertRaisesRegex(ValueError, r"History index must be in \[0, 2\]. Received: 3"):
      layout.past_gradient(3)
    with self.assertRaisesRegex(ValueError, "dimension=0, history=3"):
      state_layout.state_layout(0, 3)


class MomentumControllerTest(tf.test.TestCase):

  def test_mean_is_truncated_momentum_on_a_hand_built_history(self):
    d, h, rate, momentum = 3, 4, 0.3, 0.85
    rng = np.random.default_rng(0)
    gradients = rng.normal(size=(h + 1, d))  # g_{t-H}, ..., g_t
    state = _state(rng.normal(size=d), rng.normal(size=h), gradients, rng.normal(size=(h, d)))
    policy = initial_controller.momentum_controller(horizon=5, dimension=d, history=h, rate=rate,
                                                    momentum=momentum)
    want = -rate * sum(momentum ** i * gradients[h - i] for i in range(h + 1))
    for t in (0, 4):
      self.assertAllClose(policy.K[t].numpy() @ state + policy.k[t].numpy(), want, atol=1e-12)
    self.assertAllClose(policy.G, np.broadcast_to(0.01 * np.eye(d), (5, d, d)), atol=0.)
    self.assertEqual(policy.K.dtype, tf.float64)

  def test_reproduces_heavy_ball_momentum_within_the_history(self):
    # Zero left-padded histories: for t <= H the truncated sum is the full momentum.
    d, h, rate, momentum = 2, 6, 0.1, 0.9
    a = np.array([[3., 1.], [1., 2.]])
    policy = initial_controller.momentum_controller(horizon=h, dimension=d, history=h, rate=rate,
                                                    momentum=momentum)
    x_policy = x_momentum = np.array([1., -2.])
    velocity = np.zeros(d)
    grads, deltas = np.zeros((h + 1, d)), np.zeros((h, d))
    for t in range(h):
      g = a @ x_policy
      grads = np.concatenate([grads[1:], g[None]])
      step = policy.K[t].numpy() @ _state(x_policy, np.zeros(h), grads, deltas)
      deltas = np.concatenate([deltas[1:], step[None]])
      x_policy = x_policy + step
      velocity = momentum * velocity + a @ x_momentum
      x_momentum = x_momentum - rate * velocity
      self.assertAllClose(x_policy, x_momentum, atol=1e-12)

  def test_errors(self):
    with self.assertRaisesRegex(ValueError, r"`momentum` must be in \[0, 1\). Received: momentum=1.0"):
      initial_controller.momentum_controller(3, 2, 2, rate=0.1, momentum=1.0)
    with self.assertRaisesRegex(ValueError, "rate=-0.1"):
      initial_controller.momentum_controller(3, 2, 2, rate=-0.1, momentum=0.9)


class GridSearchTest(tf.test.TestCase):

  def test_default_grid(self):
    self.assertAllClose(initial_controller.DEFAULT_RATES, [0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
    self.assertAllClose(initial_controller.DEFAULT_MOMENTA, np.linspace(0.82, 0.92, 11))

  def test_picks_the_best_final_objective(self):
    a = np.diag([1., 10.])

    def rollout(rate, momentum, steps=20):
      x, v = np.array([1., 1.]), np.zeros(2)
      for _ in range(steps):
        v = momentum * v + a @ x
        x = x - rate * v
      return 0.5 * x @ a @ x  # diverges (huge or inf) for large rates

    with np.errstate(over="ignore", invalid="ignore"):
      rate, momentum, value = initial_controller.grid_search_momentum(rollout)
      table = np.array([[rollout(r, m) for m in initial_controller.DEFAULT_MOMENTA]
                        for r in initial_controller.DEFAULT_RATES])
    i, j = np.unravel_index(np.nanargmin(table), table.shape)
    self.assertEqual((rate, momentum), (initial_controller.DEFAULT_RATES[i], initial_controller.DEFAULT_MOMENTA[j]))
    self.assertAllClose(value, table.min(), atol=0.)
    self.assertLess(value, 0.01 * rollout(0.025, 0.82, steps=0))  # measured 0.0237 from 5.5

  def test_non_finite_rollouts_lose_and_all_diverged_raises(self):
    values = {(0.1, 0.9): np.nan, (0.1, 0.8): 3., (0.2, 0.9): np.inf, (0.2, 0.8): 2.}
    got = initial_controller.grid_search_momentum(lambda r, m: values[(r, m)], rates=(0.1, 0.2), momenta=(0.9, 0.8))
    self.assertEqual(got, (0.2, 0.8, 2.))
    with self.assertRaisesRegex(ValueError, "Every rollout of the momentum grid diverged"):
      initial_controller.grid_search_momentum(lambda r, m: np.nan, rates=(0.1,), momenta=(0.9,))


if __name__ == "__main__":
  tf.test.main()
