r"""Paired comparison of two optimizers on the same held-out test problems.

`keras-l2o-evaluate` reports each optimizer's mean with a confidence interval
over problems; when two optimizers run on the *same* problems, the per-problem
differences say more. This prints, for the sum of losses and the final loss,
the mean of (A - B) with its 95% Student-t interval, the ratio of the means,
and on how many problems A is lower.

Usage:
  python -m scripts.paired_compare --problem=neural_art \
      --a=runs/l2l-neural-art/best --b=adam@0.05623 --num_problems=50
"""

import json

from absl import app
from absl import flags

from . import cli

flags.DEFINE_string("problem", "neural_art", "Problem family.")
flags.DEFINE_string("problem_config", "{}", "JSON object of problem-family configuration.")
flags.DEFINE_integer("seed", 0, "Seed of the problem family.")
flags.DEFINE_string("a", None, "First optimizer: a run directory / export, pretrained:NAME, or "
                    "BASELINE@RATE.")
flags.DEFINE_string("b", None, "Second optimizer, same forms as --a.")
flags.DEFINE_integer("num_problems", 50, "Test problems (the first ones).", lower_bound=2)
flags.DEFINE_integer("horizon", None, "Steps (default: the family's horizon).")
FLAGS = flags.FLAGS


def spec_from(text: str):
  """An `evaluation.OptimizerSpec` from `--a` / `--b` (a baseline needs a fixed rate)."""
  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  name, _, rate = text.partition("@")
  if name in evaluation.BASELINES:
    if not rate:
      raise app.UsageError(f"{text!r}: give the baseline's (tuned) rate, e.g. {name}@0.01.")
    return evaluation.baseline(name, float(rate))
  return evaluation.from_optimizer(text, cli.load_learned(text))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.a or not FLAGS.b:
    raise app.UsageError("--a and --b are required.")
  import numpy as np  # pylint: disable=g-import-not-at-top

  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  config = json.loads(FLAGS.problem_config)
  config.setdefault("seed", FLAGS.seed)
  family = problems.get(FLAGS.problem, **config)
  runner = evaluation.Runner(family, FLAGS.horizon or family.default_horizon)
  test = [family.sample("test", i) for i in range(FLAGS.num_problems)]
  curves = {k: runner.curves(spec_from(v), test) for k, v in (("a", FLAGS.a), ("b", FLAGS.b))}
  print(f"{FLAGS.problem} {config}, {FLAGS.num_problems} test problems: A = {FLAGS.a}, "
        f"B = {FLAGS.b}")
  for label, values in (("sum of losses", evaluation.sum_loss),
                        ("final loss", lambda c: c[:, -1])):
    a, b = values(curves["a"]), values(curves["b"])
    mean, (lo, hi) = evaluation.mean_ci95(a - b)
    print(f"{label}: mean A {a.mean():.4g}, mean B {b.mean():.4g}, A/B {a.mean() / b.mean():.3f}, "
          f"mean(A - B) {mean:.4g} [95% CI {lo:.4g}, {hi:.4g}], A lower on "
          f"{int(np.sum(a < b))}/{len(a)}")


if __name__ == "__main__":
  app.run(main)
