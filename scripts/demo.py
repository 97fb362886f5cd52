r"""Demo: the learned rules train a small MLP on sklearn's digits, next to Adam.

Trains the same MLP (64-64-10, same initial weights) on the 8x8 digits of
`sklearn.datasets.load_digits()` (offline; 75/25 stratified train/test split
with a fixed seed) with

* `keras.optimizers.Adam(1e-3)`,
* `keras_l2o.LearnedOptimizer("lstm")` and
* `keras_l2o.LearnedOptimizer("mlp")`

(the learned rules with their initial meta-parameters: mlp starts as Adam(1e-3),
lstm as a sign-momentum method with steps of about 0.01), prints a table of final
train loss, test accuracy and training time, and saves the training-loss curves
to `--output_dir/curves.png` (and the numbers to `--output_dir/results.json`).

Usage:

  make demo                  # or: python -m scripts.demo
  python -m scripts.demo --epochs=30 --output_dir=/tmp/demo --seed=1
"""

import json
import math
import os
import time

from absl import app
from absl import flags
from absl import logging
import keras
import numpy as np

import keras_l2o
from scripts import flags as script_flags

script_flags.define_demo_flags()
for _name in script_flags.DEMO_FLAGS:  # Listed by --helpshort.
  flags.declare_key_flag(_name)
FLAGS = flags.FLAGS

BATCH_SIZE = 32
HIDDEN = 64
TEST_FRACTION = 0.25

OPTIMIZERS = (
    ("keras.optimizers.Adam(1e-3)", lambda: keras.optimizers.Adam(1e-3)),
    ('LearnedOptimizer("lstm")', lambda: keras_l2o.LearnedOptimizer("lstm")),
    ('LearnedOptimizer("mlp")', lambda: keras_l2o.LearnedOptimizer("mlp")),
)


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


def train_one(name, make_optimizer, data, *, epochs: int, seed: int) -> dict:
  """Trains one model; the loss curve is the full-train-set loss after each epoch."""
  x_train, x_test, y_train, y_test = data
  keras.backend.clear_session()
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


def run_demo(*, epochs: int, output_dir: str, seed: int) -> list:
  """Runs the demo; returns one result dict per optimizer and writes the outputs."""
  os.makedirs(output_dir, exist_ok=True)
  data = load_data(seed)
  logging.info("digits: %d train / %d test examples; MLP 64-%d-10, batch %d, %d epochs.",
               len(data[0]), len(data[1]), HIDDEN, BATCH_SIZE, epochs)
  results = [train_one(name, make, data, epochs=epochs, seed=seed) for name, make in OPTIMIZERS]
  for r in results:
    if not (math.isfinite(r["final_train_loss"]) and 0.0 <= r["test_accuracy"] <= 1.0):
      logging.warning("%s ended with a non-finite loss or invalid accuracy.", r["optimizer"])
  plot_path = os.path.join(output_dir, "curves.png")
  plot_curves(results, plot_path,
              f"sklearn digits, MLP 64-{HIDDEN}-10, batch {BATCH_SIZE}, seed {seed}")
  with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as f:
    json.dump({"epochs": epochs, "seed": seed, "batch_size": BATCH_SIZE, "results": results},
              f, indent=2)
  logging.info("Wrote %s and results.json.", plot_path)
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected positional arguments: {argv[1:]}")
  output_dir = FLAGS.output_dir or script_flags.DEMO_OUTPUT_DIR
  results = run_demo(epochs=FLAGS.epochs, output_dir=output_dir, seed=FLAGS.seed)
  print(format_table(results))
  print(f"\nTraining-loss curves: {os.path.join(output_dir, 'curves.png')}", flush=True)


def run():
  app.run(main)


if __name__ == "__main__":
  run()
