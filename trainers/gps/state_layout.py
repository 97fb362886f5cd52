"""Where each feature sits in the P1 GPS state vector (GPS.md 1).

The state of the optimisation MDP for d parameters and history length H is

    [location (d)                       -- only with `with_location=True`
     relative objective changes (H)     -- (f_i - f_{i-1}) / f_{i-1}
     past gradients (H blocks of d)     -- oldest first
     current gradient (d)
     past location deltas (H blocks of d)]  -- oldest first

Histories are left-padded with zeros. The location enters the cost only, never
the policy's input: the policy observes `state[..., layout.observation]`, the
contiguous block after it. With d = 4 and H = 25 the state has 233 entries and
the observation 229.

Example:
  >>> layout = state_layout(4, 25)
  >>> layout.size, layout.observation, layout.current_gradient
  (233, slice(4, 233, None), slice(129, 133, None))
"""

from typing import NamedTuple


class StateLayout(NamedTuple):
  """Index slices into the state vector (see the module docstring)."""
  dimension: int
  history: int
  location: slice
  relative_changes: slice
  past_gradients: slice
  current_gradient: slice
  past_deltas: slice
  observation: slice
  size: int

  def past_gradient(self, j):
    """The slice of past gradient j (0 = oldest, history - 1 = the previous step's)."""
    return self._block(self.past_gradients, j)

  def past_delta(self, j):
    """The slice of past location delta j (0 = oldest)."""
    return self._block(self.past_deltas, j)

  def _block(self, span, j):
    if not 0 <= j < self.history:
      raise ValueError(f"History index must be in [0, {self.history - 1}]. Received: {j}")
    start = span.start + j * self.dimension
    return slice(start, start + self.dimension)


def state_layout(dimension, history, with_location=True):
  """The P1 state layout for `dimension` parameters and `history` steps.

  Args:
    dimension: d, the number of optimisee parameters (the action size).
    history: H, the number of past steps kept.
    with_location: whether the state starts with the current location (as the
      GPS state does, for the cost); False gives the observation alone (then
      `location` is the empty slice at 0).

  Returns:
    A `StateLayout`.

  Raises:
    ValueError: unless dimension >= 1 and history >= 1.
  """
  if int(dimension) != dimension or dimension < 1 or int(history) != history or history < 1:
    raise ValueError("`dimension` and `history` must be positive integers. "
                     f"Received: dimension={dimension}, history={history}")
  d, h = int(dimension), int(history)
  start = d if with_location else 0
  spans = []
  for length in (h, h * d, d, h * d):
    spans.append(slice(start, start + length))
    start += length
  return StateLayout(dimension=d, history=h, location=slice(0, d if with_location else 0),
                     relative_changes=spans[0], past_gradients=spans[1], current_gradient=spans[2],
                     past_deltas=spans[3], observation=slice(d if with_location else 0, start), size=start)
