r"""Inner steps per second of the PES / ES and BPTT meta-trainers on the same rule and problem.

An inner step is one optimizer step of one trajectory (of one particle, for
PES / ES). BPTT runs `problems_per_replica` trajectories per meta-step and
differentiates through them; PES runs `2 num_pairs` particles forward only,
vectorised (and, with `--novectorized`, as a loop over the particles in the
graph). Each trainer is timed over `--steps` meta-steps after `--warmup`
(tracing excluded), validation and checkpoints out of the timed window.

Usage:
  nice -n 5 python -m scripts.es_throughput --rule=mlp --problem=mnist_mlp
"""

import json
import tempfile
import time

from absl import app
from absl import flags

from . import trainers_module

FLAGS = flags.FLAGS


def define_flags():
  """Defines this script's flags."""
  flags.DEFINE_string("rule", "mlp", "Rule.")
  flags.DEFINE_string("problem", "mnist_mlp", "Problem family.")
  flags.DEFINE_integer("unroll_length", 20, "Inner steps per truncation.")
  flags.DEFINE_integer("num_pairs", 8, "PES antithetic pairs (2x particles).")
  flags.DEFINE_integer("bptt_problems", 1, "BPTT trajectories per meta-step (its default).")
  flags.DEFINE_integer("warmup", 3, "Untimed meta-steps.")
  flags.DEFINE_integer("steps", 20, "Timed meta-steps.")
  flags.DEFINE_integer("intra_op_threads", 1, "TensorFlow threads inside an op (as "
                       "keras-l2o-meta-train's default for mnist_mlp with BPTT).")


def _timed(step_fn, inner_per_step):
  for _ in range(FLAGS.warmup):
    step_fn()
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    step_fn()
  return FLAGS.steps * inner_per_step / (time.perf_counter() - start)


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_intra_op_parallelism_threads(FLAGS.intra_op_threads)
  import keras_l2o  # pylint: disable=g-import-not-at-top
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  bptt = trainers_module("bptt")
  pes = trainers_module("pes")
  family, rule = problems.get(FLAGS.problem), keras_l2o.rules.get(FLAGS.rule)
  k = FLAGS.unroll_length
  results = {}
  config = bptt.BPTTConfig(unroll_length=k, horizon=100 * k,
                           problems_per_replica=FLAGS.bptt_problems)
  trainer = bptt.BPTTTrainer(rule, family, config, tempfile.mkdtemp())
  for slot in range(trainer.meta_batch):
    trainer._start_trajectory(slot)  # pylint: disable=protected-access
  results["bptt"] = _timed(trainer._train_step, FLAGS.bptt_problems * k)  # pylint: disable=protected-access
  for vectorized in (True, False):
    config = pes.PESConfig(unroll_length=k, num_pairs=FLAGS.num_pairs, vectorized=vectorized)
    trainer = pes.PESTrainer(rule, family, config, tempfile.mkdtemp())
    for i in range(FLAGS.num_pairs):
      trainer._start(0, i, first=True)  # pylint: disable=protected-access
    name = "pes" if vectorized else "pes_particle_loop"
    results[name] = _timed(trainer._train_step, 2 * FLAGS.num_pairs * k)  # pylint: disable=protected-access
  print(json.dumps({"inner_steps_per_second": results, "rule": FLAGS.rule,
                    "problem": FLAGS.problem, "num_pairs": FLAGS.num_pairs,
                    "bptt_problems": FLAGS.bptt_problems, "unroll_length": k}))


if __name__ == "__main__":
  define_flags()
  app.run(main)
