"""PES under MirroredStrategy over 2 logical CPUs: the pairs split over the replicas give the
same meta-gradient and meta-parameters as one device running all of them.

Runs in a fresh process (the CPU must be split before TensorFlow initialises).
"""

import json
import subprocess
import sys
import tempfile

import tensorflow as tf

from tests import testing_utils

ROOT = testing_utils.REPO_ROOT

_MIRRORED_PES = r"""
import json, os, sys
import numpy as np
from keras_l2o import distribute
strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
import tensorflow as tf, keras_l2o
from keras_l2o import problems
from trainers import pes

estimator, vectorized, pairs, root = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]

def trainer(strategy, name):
  config = pes.PESConfig(estimator=estimator, num_steps=8, unroll_length=5, min_horizon=10,
                         max_horizon=20, num_pairs=pairs, validation_every=8, validation_problems=2,
                         checkpoint_every=4, meta_learning_rate=1e-2,
                         vectorized=vectorized)
  return pes.PESTrainer(keras_l2o.rules.get("mlp", hidden_size=4),
                        problems.get("quadratic", seed=3, num_quadratics=8), config,
                        os.path.join(root, name), strategy=strategy)

mirrored, single = trainer(strategy, "mirrored"), trainer(None, "single")
for t in (mirrored, single):
  for i in range(pairs):
    t._start(0, i, first=True)
gm, _, outs_m = mirrored._step_fn()
gs, _, outs_s = single._step_fn()
rm, rs = mirrored.run(), single.run()
flat = lambda t: [v.numpy() for v in tf.nest.flatten(keras_l2o.load(t.save_dir).meta_params)]
init = [v.numpy() for v in tf.nest.flatten(keras_l2o.rules.get("mlp", hidden_size=4).init_meta_params(0))]
replicas = [strategy.experimental_local_results(v) for v in mirrored._flat_meta]
print(json.dumps({
    "replicas": mirrored.num_replicas,
    "grad_diff": max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(gm, gs)),
    "grad_scale": max(float(np.abs(b.numpy()).max()) for b in gs),
    "values_diff": float(np.abs(outs_m[0]["values"].numpy() - outs_s[0]["values"].numpy()).max()),
    "param_diff": max(float(np.abs(a - b).max()) for a, b in zip(flat(mirrored), flat(single))),
    "moved": max(float(np.abs(a - b).max()) for a, b in zip(flat(single), init)),
    "replica_diff": max(float(np.abs(r[0].numpy() - r[1].numpy()).max()) for r in replicas),
    "trajectories": [int(mirrored.next_trajectory[0]), int(single.next_trajectory[0])],
    "digests": [rm["meta_params_sha256"], rs["meta_params_sha256"]],
}))
"""


class MirroredPESTest(tf.test.TestCase):

  def _run(self, estimator, vectorized, pairs):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_PES, estimator, str(int(vectorized)),
                             str(pairs), tempfile.mkdtemp(dir=self.get_temp_dir())],
                            capture_output=True, text=True, timeout=300, check=False, cwd=ROOT)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    self.assertEqual(out["replicas"], 2)
    self.assertGreater(out["grad_scale"], 1e-3)
    self.assertGreater(out["moved"], 1e-2)  # it trained: not a vacuous equality
    self.assertEqual(out["replica_diff"], 0.0)  # the replicas hold the same meta-parameters
    self.assertEqual(out["trajectories"][0], out["trajectories"][1])
    self.assertGreater(out["trajectories"][0], pairs)  # pairs restarted on fresh problems
    return out

  def test_two_replicas_equal_one_device_bit_for_bit_per_particle(self):
    # Particle by particle (no vectorisation) the replicas compute exactly what one device
    # does, and with one pair per replica the estimates add up in the same order: the same
    # meta-parameters bit for bit. (With more pairs per replica the sums associate
    # differently, (g0 + g1) + (g2 + g3) against ((g0 + g1) + g2) + g3.)
    for estimator in ("pes", "es"):
      out = self._run(estimator, vectorized=False, pairs=2)
      self.assertEqual(out["values_diff"], 0.0, msg=estimator)
      self.assertEqual(out["digests"][0], out["digests"][1], msg=(estimator, out))

  def test_two_replicas_equal_one_device_vectorised(self):
    # Vectorised over 2 particles per replica instead of 4, the losses round differently in
    # their last bit (~2e-7 relative), which the estimate multiplies by xi / (2 sigma^2).
    out = self._run("pes", vectorized=True, pairs=4)
    self.assertLessEqual(out["values_diff"], 1e-5)
    self.assertLessEqual(out["grad_diff"], 1e-3 * out["grad_scale"], msg=out)
    self.assertLessEqual(out["param_diff"], 1e-3 * out["moved"], msg=out)


if __name__ == "__main__":
  tf.test.main()
