"""Issue 21: the default's weight decay, chosen on its meta-training tasks' held-out data.

For each of `general_tasks`' eight task shapes (`keras_l2o.problems.general_tasks.TASKS`:
datasets made for meta-training, none used by the held-out suite), a Keras model of that
shape is trained on 80% of its dataset with `keras_l2o.pretrained.get(NAME,
num_training_steps=T, weight_decay=wd)` for the task's horizon T, and its loss on the other
20% is measured. Every weight decay of the grid runs on the same seeds; the score of a weight
decay is the mean over tasks and seeds of log(held-out loss / held-out loss without decay).
The choice: the best score among the weight decays whose mean log(training loss ratio) (the
training loss averaged over the run, against no decay) is at most 0.1, i.e. that do not slow
training by more than ~10%. Measured (`select_on_meta_tasks.jsonl`): 1e-2 scores -1.02 but
raises the training loss 54%; 3e-3 scores -0.97 and raises it 6%: 3e-3 is chosen. Nothing
of the suite is used.

Usage: python docs/results/weight_decay/select_on_meta_tasks.py [--seeds=2] \
  [--optimizer=pretrained:l2o-mlp-general] [--weight_decays=0,1e-4,...] > OUT.jsonl
(`--optimizer` also takes a meta-training directory, `DIR` or `DIR@best`, to compare
meta-training results on the same held-out data.)
"""

import json
import math
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o.problems import general_tasks
from keras_l2o.problems import meta_data

GRID = (0.0, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def model_for(spec, input_shape, seed):
  keras.utils.set_random_seed(seed)
  layers = [keras.Input(input_shape)]
  if spec.architecture == "conv":
    for channels in spec.sizes:
      layers += [keras.layers.Conv2D(channels, 3, padding="same", activation=spec.activation),
                 keras.layers.MaxPooling2D(2)]
    layers.append(keras.layers.Flatten())
  else:
    layers.append(keras.layers.Flatten())
    layers += [keras.layers.Dense(width, activation=spec.activation) for width in spec.sizes]
  layers.append(keras.layers.Dense(10))
  return keras.Sequential(layers)


def make_optimizer(entry, num_training_steps, weight_decay):
  """`pretrained:NAME`, or a meta-training directory `DIR[@which]`, on the warm-up + cosine schedule."""
  if entry.startswith("pretrained:"):
    return keras_l2o.pretrained.get(entry.split(":", 1)[1], num_training_steps=num_training_steps,
                                    weight_decay=weight_decay or None)
  path, _, which = entry.partition("@")
  loaded = keras_l2o.load(path, which=which or "final")
  peak = float(loaded.learning_rate.numpy())
  return keras_l2o.LearnedOptimizer(
      loaded.rule, meta_params=tf.nest.map_structure(lambda v: v.numpy(), loaded.meta_params),
      learning_rate=keras_l2o.schedules.warmup_cosine(peak, num_training_steps),
      weight_decay=weight_decay or None)


def held_out_loss(spec, entry, weight_decay, seed):
  data = meta_data.load(spec.dataset, image_shape=spec.architecture == "conv")
  order = np.random.default_rng(seed).permutation(len(data.x))
  cut = int(0.8 * len(order))
  train, test = order[:cut], order[cut:]
  model = model_for(spec, data.x.shape[1:], seed)
  optimizer = make_optimizer(entry, spec.horizon, weight_decay)
  model.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  stream = tf.data.Dataset.from_tensor_slices((data.x[train], data.y[train]))
  stream = stream.shuffle(len(train), seed=seed).repeat().batch(spec.batch_size)
  history = model.fit(stream, steps_per_epoch=spec.horizon, epochs=1, verbose=0)
  test_loss = model.evaluate(data.x[test], data.y[test], batch_size=512, verbose=0)
  return float(history.history["loss"][-1]), float(test_loss)


def main(argv):
  args = dict(a.lstrip("-").split("=", 1) for a in argv[1:])
  seeds = range(int(args.get("seeds", 2)))
  entry = args.get("optimizer", "pretrained:l2o-mlp-general")
  grid = (tuple(float(w) for w in args["weight_decays"].split(","))
          if "weight_decays" in args else GRID)
  scores = {wd: [] for wd in grid}
  for spec in general_tasks.TASKS:
    for seed in seeds:
      base = None
      for wd in grid:
        train_loss, test_loss = held_out_loss(spec, entry, wd, seed)
        base = test_loss if base is None else base
        ratio = math.log(test_loss / base) if math.isfinite(test_loss) else math.inf
        scores[wd].append(ratio)
        print(json.dumps({"optimizer": entry, "task": spec.name, "horizon": spec.horizon,
                          "seed": seed,
                          "weight_decay": wd, "train_loss": train_loss, "test_loss": test_loss}),
              flush=True)
  for wd in grid:
    print(json.dumps({"weight_decay": wd, "mean_log_ratio": float(np.mean(scores[wd])),
                      "tasks_better": int(sum(r < 0 for r in scores[wd]))}), flush=True)


if __name__ == "__main__":
  main(sys.argv)
