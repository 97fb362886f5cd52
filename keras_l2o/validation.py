"""One validation layer for the numbers a user or a file hands to keras_l2o.

Every entry point (the `LearnedOptimizer` constructor, `rules.get` and the rule
constructors, `set_meta_params`, `keras_l2o.load`, and the command lines) checks
its numbers with these functions, so a bad value is refused before it can
wreck a model, with one message style (Keras's):

    Argument `learning_rate` must be a finite number >= 0. Received: learning_rate=nan

Each `check_*` function returns the value converted to the plain Python type
it stands for (`float`, `int`, `bool`), so configs stay JSON-serialisable.

Example:

>>> from keras_l2o import validation
>>> validation.check_number("beta_1", 0.9, low=0.0, high=1.0, high_open=True)
0.9
>>> validation.check_bool("amsgrad", "False")
Traceback (most recent call last):
  ...
ValueError: Argument `amsgrad` must be a bool (True or False). Received: amsgrad='False'
"""

import math
import numbers

import numpy as np

# Meta-parameters larger than this in magnitude are refused: shipped and freshly
# meta-trained optimizers stay below 10 (largest shipped entry: 3.04), and a value
# near float32's range (3.4e38) overflows the first step.
MAX_META_PARAM_MAGNITUDE = 1e6
# The largest width of a rule's network (hidden units per layer) and the most
# layers: the shipped rules use 16-50 units and 2 layers. A coordinatewise rule
# keeps state per parameter per unit, so larger sizes are mistakes (or crafted
# files: `keras_l2o.load` builds the rule from an export's metadata, and a
# hidden size of 10^5 would allocate tens of GiB before anything else failed).
MAX_WIDTH = 1024
MAX_LAYERS = 8
# The most meta-parameter entries a rule may have (400 MB of float32).
MAX_META_PARAMS = 10**8


def _received(name, value):
  plain = isinstance(value, (bool, str, numbers.Number))  # their repr shows the type
  kind = "" if plain else f" (of type {type(value).__name__})"
  return f"Received: {name}={value!r}{kind}"


def _is_real(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _range_text(low, high, low_open, high_open) -> str:
  if low is not None and high is not None:
    return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
  if low is not None:
    return f"{'>' if low_open else '>='} {low}"
  if high is not None:
    return f"{'<' if high_open else '<='} {high}"
  return ""


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False) -> float:
  """Checks that `value` is a finite real number in the given range; returns it as a float.

  Args:
    name: the argument's name, shown in the message.
    value: the received value.
    low, high: bounds (None: unbounded on that side).
    low_open, high_open: whether the bound itself is excluded.

  Returns:
    `float(value)`.

  Raises:
    ValueError: if `value` is not a real number (bools are refused), is NaN or
      infinite, or lies outside the range; the message names `name` and shows
      `value`.
  """
  ok = _is_real(value) and math.isfinite(float(value))
  if ok:
    number = float(value)
    ok = ((low is None or (number > low if low_open else number >= low)) and
          (high is None or (number < high if high_open else number <= high)))
  if not ok:
    bounds = _range_text(low, high, low_open, high_open)
    raise ValueError(f"Argument `{name}` must be a finite number{' ' + bounds if bounds else ''}. "
                     f"{_received(name, value)}")
  return number


def check_positive(name, value) -> float:
  """`check_number(name, value, low=0, low_open=True)`: a finite number > 0."""
  return check_number(name, value, low=0, low_open=True)


def check_non_negative(name, value) -> float:
  """`check_number(name, value, low=0)`: a finite number >= 0."""
  return check_number(name, value, low=0)


def check_decay(name, value) -> float:
  """A decay rate of a moving average: a finite number in [0, 1)."""
  return check_number(name, value, low=0, high=1, high_open=True)


def check_int(name, value, *, low=None, high=None) -> int:
  """Checks that `value` is an integer (Python or numpy, not a bool) in [`low`, `high`].

  Returns:
    `int(value)`.

  Raises:
    ValueError: naming `name` and showing `value`.
  """
  if (not isinstance(value, numbers.Integral) or isinstance(value, (bool, np.bool_))
      or (low is not None and value < low) or (high is not None and value > high)):
    bound = _range_text(low, high, False, False)
    raise ValueError(f"Argument `{name}` must be an integer{' ' + bound if bound else ''}. "
                     f"{_received(name, value)}")
  return int(value)


def check_width(name, value) -> int:
  """A network width (hidden units): an integer in [1, MAX_WIDTH]."""
  return check_int(name, value, low=1, high=MAX_WIDTH)


def check_meta_param_count(rule_name, count) -> int:
  """Refuses a rule configuration whose meta-parameters would exceed `MAX_META_PARAMS` entries.

  Raises:
    ValueError: naming the rule and the count.
  """
  if count > MAX_META_PARAMS:
    raise ValueError(f"Rule {rule_name!r} would have {count} meta-parameters, more than the "
                     f"{MAX_META_PARAMS} keras_l2o allows: reduce its sizes.")
  return count


def check_bool(name, value) -> bool:
  """Checks that `value` is a bool (Python or numpy); strings such as "False" are refused.

  Raises:
    ValueError: naming `name` and showing `value`.
  """
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(f"Argument `{name}` must be a bool (True or False). "
                     f"{_received(name, value)}")
  return bool(value)


def check_choice(name, value, choices):
  """Checks that `value` is one of `choices`; returns it.

  Raises:
    ValueError: naming `name`, the choices and `value`.
  """
  if not any(value is c or (type(value) is type(c) and value == c) for c in choices):
    raise ValueError(f"Argument `{name}` must be one of {list(choices)}. {_received(name, value)}")
  return value


def check_array(name, value, *, max_magnitude=MAX_META_PARAM_MAGNITUDE, shape=None):
  """Checks that an array is numeric, finite and at most `max_magnitude` in absolute value.

  Args:
    name: how the array is named in the message (e.g. "meta_params['skip']").
    value: array-like (numpy array, tensor, variable, nested lists).
    max_magnitude: the largest absolute value accepted (None: any finite value).
    shape: the expected shape, or None.

  Returns:
    The array as a float32 numpy array.

  Raises:
    ValueError: for a non-numeric dtype, the wrong shape, NaN/Inf entries (the
      message gives the first such index) or entries larger than
      `max_magnitude`.
  """
  array = np.asarray(value.numpy() if hasattr(value, "numpy") else value)
  if shape is not None and tuple(array.shape) != tuple(shape):
    raise ValueError(f"{name} has shape {tuple(array.shape)}; expected shape {tuple(shape)}.")
  if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
    raise ValueError(f"{name} must be numeric. Received dtype {array.dtype}.")
  as_float = array.astype(np.float64)
  bad = ~np.isfinite(as_float)
  if bad.any():
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    raise ValueError(f"{name} must be finite; entry {index} is {float(as_float[index])!r}.")
  if max_magnitude is not None and as_float.size and np.abs(as_float).max() > max_magnitude:
    index = tuple(int(i) for i in np.unravel_index(np.abs(as_float).argmax(), as_float.shape))
    raise ValueError(f"{name} has entry {index} = {float(as_float[index]):g}, larger in magnitude "
                     f"than {max_magnitude:g}: not a usable meta-parameter.")
  return as_float.astype(np.float32)


def check_learning_rate(value):
  """Checks a `learning_rate` argument: a finite number >= 0, a schedule or a callable.

  Returns:
    A float for a number; a `LearningRateSchedule` or callable unchanged.

  Raises:
    ValueError: for NaN, Inf, a negative number or anything else.
  """
  if callable(value):
    return value
  if hasattr(value, "numpy") and np.ndim(value.numpy()) == 0:  # a variable or scalar tensor
    check_non_negative("learning_rate", float(value.numpy()))
    return value
  if not _is_real(value):
    raise ValueError("Argument `learning_rate` must be a finite number >= 0, a "
                     "keras.optimizers.schedules.LearningRateSchedule or a callable. "
                     f"{_received('learning_rate', value)}")
  return check_non_negative("learning_rate", value)
