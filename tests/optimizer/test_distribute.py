"""Strategies from one factory; model.fit with a LearnedOptimizer under MirroredStrategy."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from keras_l2o import distribute
from tests import testing_utils

# Runs in a fresh process: the CPU must be split before TensorFlow runs any op.
_MIRRORED_FIT = r"""
import json, sys
import numpy as np
from keras_l2o import distribute
strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
import keras, tensorflow as tf, keras_l2o
from keras_l2o import datasets
data = datasets.digits()
x, y = data.x[:512], data.y[:512]

def train(strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(10)])
    model.compile(optimizer=keras_l2o.LearnedOptimizer(sys.argv[1]),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
  initial = [w.numpy() for w in model.weights]
  model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
  model.moved = max(float(np.abs(w.numpy() - i).max()) for w, i in zip(model.weights, initial))
  return model

mirrored = train(strategy)
single = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
variable = mirrored.trainable_variables[0]
replicas = [v.numpy() for v in strategy.experimental_local_results(variable.value)]
print(json.dumps({
    "replicas": strategy.num_replicas_in_sync,
    "replica_diff": float(np.abs(replicas[0] - replicas[1]).max()),
    "max_diff": max(float(np.abs(a.numpy() - b.numpy()).max())
                    for a, b in zip(mirrored.weights, single.weights)),
    "moved": mirrored.moved,
}))
"""

# Evaluation with one problem per replica (5 problems: the last group is padded).
_MIRRORED_EVALUATION = r"""
import json
import numpy as np
from keras_l2o import distribute
strategy = distribute.get_strategy("mirrored", num_cpu_devices=2)
import tensorflow as tf
from keras_l2o import evaluation, problems
family = problems.get("quadratic", num_quadratics=8)
specs = [evaluation.baseline("sgd"), evaluation.baseline("momentum", 0.01),
         evaluation.from_optimizer("lstm", __import__("keras_l2o").LearnedOptimizer("lstm"))]
kwargs = dict(num_problems=5, tuning_problems=3, grid=(0.01, 0.1), speedup_horizon_factor=1)
mirrored = evaluation.evaluate(family, specs, strategy=strategy, **kwargs)
single = evaluation.evaluate(family, specs, strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
                             **kwargs)
print(json.dumps({
    "names": sorted(mirrored["curves"]),
    "max_diff": max(float(np.abs(mirrored["curves"][n] - single["curves"][n]).max())
                    for n in mirrored["curves"]),
    "shapes": [list(mirrored["curves"][n].shape) for n in sorted(mirrored["curves"])],
    "spread": min(float(np.ptp(mirrored["curves"][n][:, -1])) for n in mirrored["curves"]),
    "tuned_rate": [mirrored["optimizers"]["sgd"]["learning_rate"],
                   single["optimizers"]["sgd"]["learning_rate"]],
}))
"""


class StrategyFactoryTest(tf.test.TestCase):

  def test_unknown_name_lists_the_valid_ones(self):
    with self.assertRaises(ValueError) as ctx:
      distribute.get_strategy("horovod")
    self.assertEqual(str(ctx.exception), "Unknown strategy 'horovod'. Valid strategies: default, "
                     "mirrored, multi_worker, parameter_server, tpu.")

  def test_no_tpu_gives_the_documented_error(self):
    self.assertEqual(tf.config.list_logical_devices("TPU"), [])
    with self.assertRaisesRegex(ValueError, r"^No TPU found: tf\.config\.list_logical_devices"
                                r"\('TPU'\) is empty and no TPU name or address was given"):
      distribute.get_strategy("tpu")

  def test_cluster_strategies_need_tf_config(self):
    old = os.environ.pop("TF_CONFIG", None)
    try:
      with self.assertRaisesRegex(ValueError, r"Strategy 'multi_worker' needs the TF_CONFIG "
                                  r"environment variable"):
        distribute.get_strategy("multi_worker")
      os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                            "task": {"type": "worker", "index": 0}})
      with self.assertRaisesRegex(ValueError, r"needs a 'ps' job in TF_CONFIG's cluster\. "
                                  r"Received jobs: \['worker'\]"):
        distribute.get_strategy("parameter_server")
    finally:
      os.environ.pop("TF_CONFIG", None)
      if old is not None:
        os.environ["TF_CONFIG"] = old

  def test_default_strategy_has_one_replica(self):
    self.assertEqual(distribute.get_strategy().num_replicas_in_sync, 1)


class MirroredFitTest(tf.test.TestCase):

  def _fit(self, rule):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_FIT, rule], capture_output=True,
                            text=True, timeout=300, check=False,
                            cwd=testing_utils.REPO_ROOT)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])

  def test_mirrored_fit_equals_single_device_and_replicas_stay_identical(self):
    for rule in ("mlp", "lstm"):
      out = self._fit(rule)
      self.assertEqual(out["replicas"], 2)
      self.assertEqual(out["replica_diff"], 0.0, msg=rule)
      self.assertLess(out["max_diff"], 1e-5, msg=rule)
      self.assertGreater(out["moved"], 1e-3, msg=rule)  # it trained: the equality is not vacuous


class MirroredEvaluationTest(tf.test.TestCase):

  def test_replicas_evaluate_different_problems_with_single_device_results(self):
    result = subprocess.run([sys.executable, "-c", _MIRRORED_EVALUATION], capture_output=True,
                            text=True, timeout=300, check=False,
                            cwd=testing_utils.REPO_ROOT)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    out = json.loads(result.stdout.strip().splitlines()[-1])
    self.assertEqual(out["names"], ["lstm", "momentum", "sgd"])
    self.assertEqual(out["shapes"], [[5, 101]] * 3)  # 5 problems: the padded copy is dropped
    self.assertEqual(out["max_diff"], 0.0)
    self.assertGreater(out["spread"], 1e-3)  # the problems differ: each replica ran its own
    self.assertEqual(out["tuned_rate"][0], out["tuned_rate"][1])


if __name__ == "__main__":
  tf.test.main()
