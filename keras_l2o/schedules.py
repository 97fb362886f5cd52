"""Learning-rate schedules for a run whose number of steps is known.

A learned optimizer's update is meta-trained at a fixed learning rate (its
card's). When a user knows how many steps the run will take, as VeLO asks,
the same optimizer does better on the schedule today's tuned baselines use:
a linear warm-up over the first 5% of the steps, then a cosine decay to 0
(`docs/RESULTS.md`, "Given the number of steps"). `warmup_cosine` is that
schedule, as Keras's own `CosineDecay`; `keras_l2o.pretrained.get(...,
num_training_steps=T)` and the suite's AdamW and Muon baselines use it.

Example:

>>> from keras_l2o import schedules
>>> schedule = schedules.warmup_cosine(1.0, 1000)
>>> [round(float(schedule(step)), 4) for step in (0, 25, 50, 525, 1000)]
[0.0, 0.5, 1.0, 0.5, 0.0]
"""

import keras

from keras_l2o import validation

# The share of the steps spent warming up (linearly, from 0 to the peak rate).
WARMUP_FRACTION = 0.05


def warmup_steps(num_training_steps: int) -> int:
  """The warm-up's length: 5% of the steps, at least 1."""
  return max(1, int(WARMUP_FRACTION * num_training_steps))


def warmup_cosine(peak, num_training_steps):
  """Linear warm-up to `peak` over 5% of the steps, then cosine decay to 0 at the last step.

  Args:
    peak: the learning rate at the end of the warm-up (a positive number).
    num_training_steps: the run's number of steps, an integer >= 2.

  Returns:
    A `keras.optimizers.schedules.CosineDecay`, usable as any Keras
    optimizer's `learning_rate`.

  Raises:
    ValueError: for a bad argument (the message names it and what it got).
  """
  peak = validation.check_positive("peak", peak)
  num_training_steps = validation.check_int("num_training_steps", num_training_steps, low=2)
  warmup = warmup_steps(num_training_steps)
  return keras.optimizers.schedules.CosineDecay(0.0, num_training_steps - warmup, alpha=0.0,
                                                warmup_target=peak, warmup_steps=warmup)
