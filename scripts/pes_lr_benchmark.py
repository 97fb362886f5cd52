r"""Short-horizon bias, measured: the step size of SGD meta-trained for a 2,000-step horizon.

An experiment, not a test. On the MNIST MLP (`mnist_mlp`: 784-20-10 sigmoid,
batch 128) the rule `learned_lr` (plain SGD with a learned log step size) is

1. evaluated on a grid of fixed step sizes over full `--horizon`-step runs
   (the mean training-batch loss after each update, averaged over
   `--problems` validation problems; all runs as one vectorised computation);
2. meta-trained by PES over trajectories of exactly `--horizon` steps in
   truncations of `--unroll_length`, with staggered starts;
3. meta-trained by truncated ES, the same setup without the accumulated
   perturbations;
4. meta-trained by truncated BPTT with the same truncations (exact
   gradients within a truncation, second derivatives kept).

Every run starts at `--initial_learning_rate`. The learned step sizes are
then evaluated like the grid. Results go to `--out_dir/results.json` and
`report.md`; each meta-training run is resumable (run the command again).

Usage:
  nice -n 5 python -m scripts.pes_lr_benchmark --out_dir=docs/results/pes_lr
"""

import json
import os
import time

import numpy as np
from absl import app
from absl import flags
from absl import logging

from . import trainers_module

FLAGS = flags.FLAGS


def define_flags():
  """Defines this script's flags."""
  flags.DEFINE_string("out_dir", None, "Where results.json and report.md go.")
  flags.DEFINE_string("runs_dir", None, "Where the meta-training runs go (default: "
                      "out_dir/runs).")
  flags.DEFINE_integer("horizon", 2000, "Inner steps of a training run.")
  flags.DEFINE_integer("unroll_length", 20, "Inner steps per truncation.")
  flags.DEFINE_integer("meta_steps", 600, "Meta-steps of each meta-trainer.")
  flags.DEFINE_float("meta_learning_rate", 0.03, "Adam's learning rate on the log step size.")
  flags.DEFINE_float("initial_learning_rate", 0.05, "The step size every meta-trainer starts at.")
  flags.DEFINE_integer("num_pairs", 8, "PES / ES antithetic pairs per meta-step.")
  flags.DEFINE_float("sigma", 0.1, "PES / ES perturbation of the log step size.")
  flags.DEFINE_integer("bptt_problems", 8, "BPTT trajectories per meta-step.")
  flags.DEFINE_integer("problems", 4, "Validation problems the step sizes are evaluated on.")
  flags.DEFINE_string("grid", "0.05,0.1,0.2,0.35,0.5,0.7,1,1.4,2,2.2,2.4,2.6,2.8,3,3.2,3.4,"
                      "3.7,4,4.4,5.6,8",
                      "Fixed step sizes to evaluate.")
  flags.DEFINE_string("trainers", "pes,es,bptt", "Meta-trainers to run.")
  flags.DEFINE_integer("seed", 0, "Seed of the problem family and the meta-trainers.")


def _family():
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  return problems.get("mnist_mlp", seed=FLAGS.seed, horizon=FLAGS.horizon)


def horizon_losses(rule, family, learning_rates, num_problems, horizon):
  """The meta-objective of full runs: [len(learning_rates), num_problems] mean losses."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  es_estimators = trainers_module("es_estimators")
  one = [family.sample("validation", i).tensors for i in range(num_problems)]
  tensors = es_estimators.stack(one)
  count = len(learning_rates) * num_problems
  theta = {"log_learning_rate": tf.constant(np.repeat(np.log(learning_rates), num_problems),
                                            tf.float32)}
  particles = es_estimators.init_particles(rule, family, es_estimators.tile(
      tensors, len(learning_rates)))
  run = tf.function(lambda: es_estimators.run_truncation(rule, family, theta, tensors, particles,
                                                         horizon)[0])
  values = run().numpy().reshape(len(learning_rates), num_problems)
  del count
  return values


def _meta_train(name, rule, family, out_dir):
  """Runs (or resumes) one meta-trainer; returns (learning rate, seconds, summary)."""
  bptt = trainers_module("bptt")
  pes = trainers_module("pes")
  save_dir = os.path.join(FLAGS.runs_dir or os.path.join(out_dir, "runs"), name)
  common = dict(num_steps=FLAGS.meta_steps, unroll_length=FLAGS.unroll_length,
                meta_learning_rate=FLAGS.meta_learning_rate, meta_clipnorm=None,
                validation_every=FLAGS.meta_steps, validation_problems=FLAGS.problems,
                checkpoint_every=25, log_every=10, seed=FLAGS.seed)
  if name in ("pes", "es"):
    config = pes.PESConfig(estimator=name, min_horizon=FLAGS.horizon, max_horizon=FLAGS.horizon,
                           num_pairs=FLAGS.num_pairs, sigma=FLAGS.sigma, **common)
    trainer = pes.PESTrainer(rule, family, config, save_dir)
  else:
    config = bptt.BPTTConfig(horizon=FLAGS.horizon, second_derivatives=True,
                             problems_per_replica=FLAGS.bptt_problems, **common)
    trainer = bptt.BPTTTrainer(rule, family, config, save_dir)
  start = time.time()
  summary = trainer.run()
  rate = float(np.exp(trainer.meta_vars["log_learning_rate"].numpy()))
  return rate, time.time() - start, summary


def main(argv):
  del argv
  if not FLAGS.out_dir:
    raise app.UsageError("--out_dir is required.")
  import keras_l2o  # pylint: disable=g-import-not-at-top
  os.makedirs(FLAGS.out_dir, exist_ok=True)
  path = os.path.join(FLAGS.out_dir, "results.json")
  results = json.load(open(path, encoding="utf-8")) if os.path.exists(path) else {}
  results["command"] = "python -m scripts.pes_lr_benchmark " + " ".join(
      f"--{name}={FLAGS[name].value}" for name in (
          "out_dir", "horizon", "unroll_length", "meta_steps", "meta_learning_rate",
          "initial_learning_rate", "num_pairs", "sigma", "bptt_problems", "problems", "grid",
          "trainers", "seed"))
  rule = keras_l2o.rules.get("learned_lr", initial_learning_rate=FLAGS.initial_learning_rate)
  family = _family()
  grid = [float(v) for v in FLAGS.grid.split(",")]
  if results.get("grid", {}).get("learning_rates") != grid:
    start = time.time()
    losses = horizon_losses(rule, family, grid, FLAGS.problems, FLAGS.horizon)
    results["grid"] = {"learning_rates": grid, "mean_loss": losses.mean(axis=1).tolist(),
                       "per_problem": losses.tolist(), "seconds": time.time() - start}
    json.dump(results, open(path, "w", encoding="utf-8"), indent=2)
  best = int(np.argmin(results["grid"]["mean_loss"]))
  results["grid"]["best_learning_rate"] = grid[best]
  logging.info("grid: best step size %.3g (mean loss %.4f)", grid[best],
               results["grid"]["mean_loss"][best])
  for name in [n for n in FLAGS.trainers.split(",") if n]:
    rate, seconds, summary = _meta_train(name, rule, family, FLAGS.out_dir)
    if results.get(name, {}).get("summary", {}).get("steps") == summary["steps"]:
      seconds = results[name]["seconds"]  # finished before: keep the time it took then
    loss = float(horizon_losses(rule, family, [rate], FLAGS.problems, FLAGS.horizon).mean())
    results[name] = {"learning_rate": rate, "ratio_to_grid_best": rate / grid[best],
                     "mean_loss": loss, "seconds": seconds, "summary": summary}
    logging.info("%s: step size %.4g (%.2fx the grid's best), mean loss %.4f", name, rate,
                 rate / grid[best], loss)
    json.dump(results, open(path, "w", encoding="utf-8"), indent=2)
  _write_report(results)


def _write_report(results):
  lines = ["# SGD's step size meta-trained for a 2,000-step horizon (mnist_mlp)", "",
           f"Command: `{results['command']}`", "", "| step size | mean loss over the run |",
           "|---|---|"]
  for rate, loss in zip(results["grid"]["learning_rates"], results["grid"]["mean_loss"]):
    lines.append(f"| {rate:g} | {loss:.4f} |")
  lines += ["", "| trainer | learned step size | / grid best | mean loss | minutes |",
            "|---|---|---|---|---|"]
  for name in ("pes", "es", "bptt"):
    if name in results:
      r = results[name]
      lines.append(f"| {name} | {r['learning_rate']:.4g} | {r['ratio_to_grid_best']:.2f} | "
                   f"{r['mean_loss']:.4f} | {r['seconds'] / 60:.1f} |")
  with open(os.path.join(FLAGS.out_dir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
  define_flags()
  app.run(main)
