r"""Draws stylised images of `neural_art` test problems: a learned optimizer next to a tuned baseline.

Usage (after `keras-l2o-evaluate --problem=neural_art ... --output_dir=EVAL`):
  python -m scripts.neural_art_figure --optimizer=runs/l2l-neural-art \
      --results=EVAL/results.json --problem_config='{"image_size": 128}' \
      --output=docs/results/neural_art/images_128.png

The baseline is the one with the lowest mean sum of losses in `--results`
(run at its tuned learning rate) unless `--baseline=NAME@RATE` is given. Each
row is one test problem: content, style, the initial image, the baseline's
image and the learned optimizer's image after the same number of steps, each
titled with its loss; pixels are clipped to [0, 1] for display only.
"""

import json

from absl import app
from absl import flags

from . import cli

flags.DEFINE_string("optimizer", None, "Meta-training directory, export or pretrained:NAME.")
flags.DEFINE_string("results", None, "results.json of a keras-l2o-evaluate run (picks the "
                    "best tuned baseline).")
flags.DEFINE_string("baseline", None, "NAME@RATE instead of the best baseline of --results.")
flags.DEFINE_string("problem_config", "{}", "JSON object of neural_art configuration.")
flags.DEFINE_integer("seed", 0, "Seed of the problem family.")
flags.DEFINE_integer("num_images", 4, "Test problems shown (the first ones).", lower_bound=1)
flags.DEFINE_integer("horizon", None, "Steps (default: the family's horizon).")
flags.DEFINE_string("output", None, "PNG file to write.")
FLAGS = flags.FLAGS

_BASELINES = ("sgd", "momentum", "nag", "rmsprop", "adam", "adagrad")


def best_baseline(results: dict):
  """`(name, learning_rate)` of the tuned baseline with the lowest mean sum of losses."""
  entries = {k: v for k, v in results["optimizers"].items()
             if k in _BASELINES and v["sum_loss_mean"] is not None}
  if not entries:
    raise app.UsageError(f"--results holds no baseline among {_BASELINES}.")
  name = min(entries, key=lambda k: entries[k]["sum_loss_mean"])
  return name, entries[name]["learning_rate"]


def final_images(family, spec, problems, horizon):
  """The image after `horizon` steps of `spec` on each problem, and its loss."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from keras_l2o import unroll as unroll_lib  # pylint: disable=g-import-not-at-top

  @tf.function(reduce_retracing=True)
  def run(tensors):
    state = unroll_lib.init_state(spec.rule, family, tensors)
    _, final, state = unroll_lib.unroll(spec.rule, spec.meta_params, family, tensors, state,
                                        horizon, learning_rate=spec.learning_rate)
    return state.params[0], final

  return [tuple(t.numpy() for t in run(p.tensors)) for p in problems]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if not FLAGS.optimizer or not FLAGS.output or not (FLAGS.results or FLAGS.baseline):
    raise app.UsageError("--optimizer, --output and one of --results / --baseline are required.")
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top

  config = json.loads(FLAGS.problem_config)
  config.setdefault("seed", FLAGS.seed)
  family = problems.get("neural_art", **config)
  if FLAGS.baseline:
    name, _, rate = FLAGS.baseline.partition("@")
    rate = float(rate)
  else:
    with open(FLAGS.results, encoding="utf-8") as f:
      name, rate = best_baseline(json.load(f))
  learned = evaluation.from_optimizer("learned", cli.load_learned(FLAGS.optimizer))
  horizon = FLAGS.horizon or family.default_horizon
  test = [family.sample("test", i) for i in range(FLAGS.num_images)]
  columns = [(f"{name} (lr {rate:g})", final_images(family, evaluation.baseline(name, rate), test,
                                                    horizon)),
             ("learned (lstm)", final_images(family, learned, test, horizon))]
  fig, axes = plt.subplots(len(test), 5, figsize=(10, 2.1 * len(test)), squeeze=False)
  for row, problem in enumerate(test):
    t = problem.tensors
    panels = [("content", t["content"].numpy()),
              (f"style {int(t['style_id'])}", t["style"].numpy()),
              (f"start, loss {float(family.loss(t, [t['x0']], ())):.3f}", t["x0"].numpy())]
    panels += [(f"{title}\nstep {horizon}, loss {images[row][1]:.3f}", images[row][0])
               for title, images in columns]
    for ax, (title, image) in zip(axes[row], panels):
      ax.imshow(np.clip(image, 0.0, 1.0), interpolation="nearest")
      ax.set_title(title, fontsize=8)
      ax.axis("off")
  fig.suptitle(f"neural_art test problems, {family.image_size} px", fontsize=10)
  fig.tight_layout()
  fig.savefig(FLAGS.output, dpi=80)
  print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
  app.run(main)
