"""Runs `scripts.meta_train` (same flags) and logs, after every GPS iteration, the first steps of
the local controllers and of the global policy on the training problems.

Usage (from the repository root; the flags are meta_train's):
  python docs/results/gps_logreg22/trace_first_steps.py --trainer=gps \
      --problem=logistic_regression --save_dir=DIR  > trace.jsonl

One JSON line per iteration:
* `psi_f`: the sampled controllers' mean objective f(x_t), t = 0..5 (the samples the
  iteration fits its models on, i.e. the controllers before this iteration's update);
* `psi_rate1`: the updated controllers' mean effective rate of the first step, -dx_1 / g_0
  (at t = 0 the state is [g, 0.5 g, 0.1 g, 0.02 g, 0, 0]), per condition averaged;
* `pi_f`, `pi_rate`: the policy's noiseless f(x_t), t = 0..5 and |dx_t| / |g_t|, t = 1..5,
  on the same training problems.
The last line is meta_train's own summary.
"""

import json
import sys

import numpy as np
import tensorflow as tf
from absl import app

sys.path.insert(0, "docs/results/gps_logreg22")
import first_steps  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from scripts import meta_train  # noqa: E402  pylint: disable=g-import-not-at-top
from trainers.gps import coordinate_groups as groups_lib  # noqa: E402
from trainers.gps import group_trainer  # noqa: E402

_original_local_models = group_trainer.GroupGPSTrainer._local_models
_original_iteration = group_trainer.GroupGPSTrainer._iteration


def _local_models(self, iteration, sampled):
  out = _original_local_models(self, iteration, sampled)
  self._trace_losses = out[-1]
  return out


def _iteration(self, iteration):
  record = _original_iteration(self, iteration)
  losses = self._trace_losses.numpy()  # [M, N, T + 1]
  gains, _, _ = self._to_raw(self.psi())  # [M, T, G, dS]
  first = gains.numpy()[:, 0, :, :]  # [M, G, dS]
  state0 = np.array([1.0] + [1.0 - b for b in groups_lib.GRADIENT_DECAYS] + [0.0, 0.0])
  rate1 = -(first @ state0)
  pol = [first_steps.first_steps(self.rule, self.meta_vars, self.family,
                                 self._problem("train", m).tensors, 5, 1.0)
         for m in range(self.config.num_conditions)]
  print(json.dumps({
      "iteration": iteration + 1,
      "psi_f": np.round(losses.mean(axis=(0, 1))[:6], 4).tolist(),
      "psi_sum": round(float(losses.mean(axis=(0, 1))[1:].sum()), 3),
      "psi_rate1": round(float(rate1.mean()), 3),
      "pi_f": np.round(np.mean([p[0] for p in pol], 0), 4).tolist(),
      "pi_rate": np.round(np.mean([p[1] for p in pol], 0), 3).tolist()}), flush=True)
  return record


group_trainer.GroupGPSTrainer._local_models = _local_models
group_trainer.GroupGPSTrainer._iteration = _iteration

if __name__ == "__main__":
  tf.get_logger().setLevel("ERROR")
  app.run(meta_train.main)
