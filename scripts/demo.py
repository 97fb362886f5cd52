r"""`make demo`: the main job of keras_l2o on an embedded default, offline.

1. Meta-trains a coordinatewise LSTM optimizer (Andrychowicz et al.) on random
   10-d quadratics by truncated BPTT (`--meta_steps`, default 1000, ~2 minutes).
2. Evaluates it against SGD, momentum, NAG, RMSprop and Adam, each with its
   learning rate tuned on validation quadratics, on `--num_problems` (100)
   held-out quadratics; prints the table and writes `quadratic/curves.png`,
   `report.md` and `results.json`.
3. Trains a small MLP on scikit-learn's digits with the pretrained
   general-purpose optimizer `keras_l2o.pretrained.get()` next to Adam with its
   learning rate tuned on a validation split, its low-memory variant
   (`keras_l2o.pretrained.get("l2o-mlp-factored")`, a factored second moment)
   and the optimizer trained by guided policy search on MNIST nets
   (`keras_l2o.pretrained.get("gps-mnist")`), and prints their losses and
   accuracies (`digits/curves.png`).

Usage:

  make demo                  # or: python -m scripts.demo
  python -m scripts.demo --meta_steps=1000 --output_dir=/tmp/demo
"""

import json
import math
import os
import shutil
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from . import flags as script_flags
from . import strategy_flags
from . import trainers_module

script_flags.define_demo_flags()
strategy_flags.define_strategy_flags()
for _name in script_flags.DEMO_FLAGS:  # Listed by --helpshort.
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

BATCH_SIZE = 32
HIDDEN = 64
TEST_FRACTION = 0.25

ADAM_GRID = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
VALIDATION_FRACTION = 0.2


def load_data(seed: int):
  """Digits scaled to [0, 1], split 75/25 (stratified) with `seed`."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  from sklearn import model_selection  # pylint: disable=g-import-not-at-top
  digits = datasets.load_digits()
  x = (digits.data / 16.0).astype(np.float32)
  y = digits.target.astype(np.int32)
  return model_selection.train_test_split(x, y, test_size=TEST_FRACTION, random_state=seed,
                                          stratify=y)


def build_model(seed: int):
  keras.utils.set_random_seed(seed)  # Same initial weights for every optimizer.
  return keras.Sequential([
      keras.Input((64,)),
      keras.layers.Dense(HIDDEN, activation="relu"),
      keras.layers.Dense(10),
  ])


def train_one(name, make_optimizer, data, *, epochs: int, seed: int, strategy=None) -> dict:
  """Trains one model; the loss curve is the full-train-set loss after each epoch."""
  x_train, x_test, y_train, y_test = data
  keras.backend.clear_session()
  with (strategy or tf.distribute.get_strategy()).scope():
    model = build_model(seed)
    model.compile(optimizer=make_optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"], jit_compile=False)
  initial_loss = float(model.evaluate(x_train, y_train, batch_size=512, verbose=0)[0])
  losses = [initial_loss]
  train_seconds = 0.0
  for epoch in range(epochs):
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=1, shuffle=True, verbose=0)
    train_seconds += time.perf_counter() - start
    losses.append(float(model.evaluate(x_train, y_train, batch_size=512, verbose=0)[0]))
    logging.debug("%s epoch %d: train loss %.4f", name, epoch + 1, losses[-1])
  test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=512, verbose=0)
  result = {
      "optimizer": name,
      "epochs": epochs,
      "initial_train_loss": initial_loss,
      "final_train_loss": losses[-1],
      "test_loss": float(test_loss),
      "test_accuracy": float(test_accuracy),
      "train_seconds": train_seconds,
      "train_loss_per_epoch": losses,
  }
  logging.info("%s: train loss %.4f -> %.4f, test accuracy %.4f, %.1f s", name, initial_loss,
               losses[-1], test_accuracy, train_seconds)
  return result


def plot_curves(results, path: str, title: str):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  # Distinct widths and dash patterns keep coinciding curves visible (the mlp
  # rule starts as Adam(1e-3), so its curve lies on Adam's).
  styles = [dict(linewidth=4.0, alpha=0.45, marker="o", markersize=5),
            dict(linewidth=1.8, linestyle="-", marker="s", markersize=3),
            dict(linewidth=1.5, linestyle="--", marker="x", markersize=5)]
  fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
  for i, r in enumerate(results):
    losses = r["train_loss_per_epoch"]
    ax.plot(range(len(losses)), losses, **styles[i % len(styles)],
            label=f"{r['optimizer']}  (test acc {r['test_accuracy']:.3f})")
  ax.set_yscale("log")
  ax.set_xlabel("epoch (0 = initial weights)")
  ax.set_ylabel("training loss (cross-entropy, full train set)")
  ax.set_title(title)
  ax.grid(True, which="both", alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path)
  plt.close(fig)


def format_table(results) -> str:
  header = "| optimizer | final train loss | test accuracy | time (s) |"
  lines = [header, "|---|---:|---:|---:|"]
  for r in results:
    lines.append(f"| {r['optimizer']} | {r['final_train_loss']:.4f} | "
                 f"{r['test_accuracy']:.4f} | {r['train_seconds']:.1f} |")
  return "\n".join(lines)


def meta_train_quadratic(output_dir: str, meta_steps: int, seed: int, strategy=None) -> str:
  """Stage 1: meta-trains an lstm rule on quadratics; returns the run directory."""
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  bptt = trainers_module("bptt")
  save_dir = os.path.join(output_dir, "meta_train_quadratic")
  if os.path.exists(save_dir):  # the demo always starts afresh
    shutil.rmtree(save_dir)
  config = bptt.BPTTConfig(num_steps=meta_steps, unroll_length=20, horizon=100,
                           validation_every=max(1, meta_steps // 3), validation_problems=4,
                           checkpoint_every=max(1, meta_steps // 3), seed=seed)
  start = time.perf_counter()
  summary = bptt.BPTTTrainer(keras_l2o.rules.get("lstm"),
                             problems.get("quadratic", seed=seed, num_quadratics=128), config,
                             save_dir, strategy=strategy).run()
  logging.info("Meta-trained lstm on quadratics in %.0f s: validation loss %.4g -> %.4g",
               time.perf_counter() - start, summary["first_validation_loss"],
               summary["best_validation_loss"])
  return save_dir, summary


def evaluate_quadratic(save_dir: str, output_dir: str, num_problems: int, seed: int,
                       strategy=None) -> dict:
  """Stage 2: the meta-trained optimizer against tuned baselines on held-out quadratics."""
  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  specs = [evaluation.from_optimizer("lstm (meta-trained by the demo)",
                                     keras_l2o.load(save_dir, which="best"))]
  specs += [evaluation.baseline(name) for name in evaluation.BASELINES]
  results = evaluation.evaluate(problems.get("quadratic", seed=seed), specs,
                                num_problems=num_problems, horizon=100, strategy=strategy)
  evaluation.write_results(results, os.path.join(output_dir, "quadratic"),
                           title="Held-out 10-d quadratics")
  return results


# Shown after the default when shipped: the low-memory variant and the GPS-trained optimizer.
EXTRA_PRETRAINED = ("l2o-mlp-factored", "gps-mnist")


def pretrained_optimizer():
  """The shipped general-purpose default, or the untrained mlp rule if none is shipped."""
  if keras_l2o.pretrained.DEFAULT in keras_l2o.pretrained.names():
    return "keras_l2o.pretrained.get()", keras_l2o.pretrained.get
  return 'LearnedOptimizer("mlp") (no pretrained default shipped)', lambda: (
      keras_l2o.LearnedOptimizer("mlp"))


def tune_adam(data, *, epochs: int, seed: int, strategy=None) -> float:
  """Adam's learning rate with the lowest validation loss after `epochs` (train split only)."""
  x_train, _, y_train, _ = data
  cut = int(len(x_train) * (1 - VALIDATION_FRACTION))
  inner = (x_train[:cut], x_train[cut:], y_train[:cut], y_train[cut:])
  scores = {}
  for lr in ADAM_GRID:
    result = train_one(f"Adam({lr:g})", lambda lr=lr: keras.optimizers.Adam(lr), inner,
                       epochs=epochs, seed=seed, strategy=strategy)
    scores[lr] = result["test_loss"] if math.isfinite(result["test_loss"]) else float("inf")
  best = min(scores, key=scores.get)
  logging.info("Adam learning rates tried on the validation split: %s -> %g", scores, best)
  return best


def digits_comparison(output_dir: str, *, epochs: int, seed: int, strategy=None) -> list:
  """Stage 3: the pretrained default (and EXTRA_PRETRAINED) next to tuned Adam on digits."""
  os.makedirs(output_dir, exist_ok=True)
  data = load_data(seed)
  logging.info("digits: %d train / %d test examples; MLP 64-%d-10, batch %d, %d epochs.",
               len(data[0]), len(data[1]), HIDDEN, BATCH_SIZE, epochs)
  adam_lr = tune_adam(data, epochs=epochs, seed=seed, strategy=strategy)
  name, make = pretrained_optimizer()
  results = [train_one(f"keras.optimizers.Adam({adam_lr:g}) (tuned)",
                       lambda: keras.optimizers.Adam(adam_lr), data, epochs=epochs, seed=seed,
                       strategy=strategy),
             train_one(name, make, data, epochs=epochs, seed=seed, strategy=strategy)]
  if keras_l2o.pretrained.DEFAULT in keras_l2o.pretrained.names():
    # As the README recommends when the run's length is known: warm-up + cosine over it.
    steps = epochs * math.ceil(len(data[0]) / BATCH_SIZE)
    results.append(train_one(
        f"keras_l2o.pretrained.get(num_training_steps={steps})",
        lambda: keras_l2o.pretrained.get(num_training_steps=steps), data, epochs=epochs,
        seed=seed, strategy=strategy))
  for extra in EXTRA_PRETRAINED:
    if extra in keras_l2o.pretrained.names():
      results.append(train_one(f'keras_l2o.pretrained.get("{extra}")',
                               lambda extra=extra: keras_l2o.pretrained.get(extra), data,
                               epochs=epochs, seed=seed, strategy=strategy))
  for r in results:
    if not (math.isfinite(r["final_train_loss"]) and 0.0 <= r["test_accuracy"] <= 1.0):
      logging.warning("%s ended with a non-finite loss or invalid accuracy.", r["optimizer"])
  plot_curves(results, os.path.join(output_dir, "curves.png"),
              f"sklearn digits, MLP 64-{HIDDEN}-10, batch {BATCH_SIZE}, seed {seed}")
  with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"epochs": epochs, "seed": seed, "batch_size": BATCH_SIZE,
               "adam_grid": ADAM_GRID, "results": results}, f, indent=2)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
  import logging as std_logging  # pylint: disable=g-import-not-at-top
  std_logging.getLogger("tensorflow").setLevel(std_logging.WARNING)  # SavedModel chatter
  try:  # first: it may split the CPU or join a cluster before TensorFlow initialises
    strategy = strategy_flags.strategy_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  from keras_l2o import evaluation  # pylint: disable=g-import-not-at-top
  output_dir = FLAGS.output_dir or script_flags.DEMO_OUTPUT_DIR
  os.makedirs(output_dir, exist_ok=True)
  start = time.perf_counter()
  save_dir, summary = meta_train_quadratic(output_dir, FLAGS.meta_steps, FLAGS.seed,
                                           strategy)
  print(f"1. Meta-trained an lstm optimizer on quadratics for {summary['steps']} steps: "
        f"validation loss {summary['first_validation_loss']:.4g} -> "
        f"{summary['best_validation_loss']:.4g} (run: {save_dir})\n", flush=True)
  results = evaluate_quadratic(save_dir, output_dir, FLAGS.num_problems, FLAGS.seed,
                               strategy)
  print("2. " + evaluation.report_markdown(results, "Held-out 10-d quadratics"), flush=True)
  print(f"   Curves: {os.path.join(output_dir, 'quadratic', 'curves.png')}\n", flush=True)
  digits = digits_comparison(os.path.join(output_dir, "digits"), epochs=FLAGS.epochs,
                             seed=FLAGS.seed, strategy=strategy)
  print("3. Digits MLP, trained from the same initial weights:\n")
  print(format_table(digits))
  print(f"\n   Curves: {os.path.join(output_dir, 'digits', 'curves.png')}")
  print(f"\nDemo finished in {time.perf_counter() - start:.0f} s.", flush=True)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
