"""GPS.md 5.10 in small form: GPS-trained gps_lstm against tuned GD on logistic regression.

A coordinate-group GPS run of 5 training problems and 3 iterations (about 20 s
here), evaluated as `keras-l2o-evaluate` does: held-out test problems, sgd and
momentum tuned on validation problems. Measured with this configuration for
trainer seeds 0, 1, 2 on 100 test problems: the policy is below tuned sgd (the
better baseline) at 0.93, 0.94 and 0.94 of iterations 1..100; on the 50 test
problems used here, seed 0's policy is at 0.93 and the untrained policy at 0.00. The full-size
run (the defaults of `keras-l2o-meta-train --trainer=gps`) is in docs/RESULTS.md.

These numbers are for `gps_lstm` with output_scale 0.01 and init_step 0.1, its defaults until
issue 22, which this test keeps. With today's defaults (output_scale 0.1, the same initial
policy) this small run beats tuned sgd by the sum of losses (35.48 against 35.60 on the 50 test
problems) and in 70% of iterations 1..40, but only in 32% of iterations 1..100, and at t = 400 it
is higher than at t = 40 (0.3202 against 0.3182). The full-size default runs are in
docs/results/gps_logreg22.
"""


import tempfile

import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import evaluation
from keras_l2o import problems
from trainers.gps import group_trainer


class GPSEndToEndTest(tf.test.TestCase):

  def test_gps_policy_beats_tuned_gradient_descent_on_logistic_regression(self):
    family = problems.get("logistic_regression", seed=0)
    save_dir = tempfile.mkdtemp(dir=self.get_temp_dir())
    config = group_trainer.GroupGPSConfig(num_conditions=5, iterations=3, validation_problems=8,
                                          horizon=40)
    rule = keras_l2o.rules.get("gps_lstm", output_scale=0.01, init_step=0.1)
    result = group_trainer.GroupGPSTrainer(rule, family, config, save_dir).run()
    self.assertLess(result["best_validation_loss"], 0.5 * result["first_validation_loss"])
    specs = [evaluation.from_optimizer("gps", keras_l2o.load(save_dir)),
             evaluation.baseline("sgd"), evaluation.baseline("momentum")]
    short = evaluation.evaluate(family, specs, num_problems=50, horizon=100)["optimizers"]
    curves = {name: np.asarray(value["curve_mean"]) for name, value in short.items()}
    better = min(("sgd", "momentum"), key=lambda name: short[name]["sum_loss_mean"])
    share = float(np.mean(curves["gps"][1:101] < curves[better][1:101]))
    self.assertGreaterEqual(share, 0.8, msg=f"share below tuned {better}: {share}")
    # 10x the training horizon: finite, and no higher at the end than at t = 40.
    long = evaluation.evaluate(family, specs[:1], num_problems=20, horizon=400)["optimizers"]
    curve = np.asarray(long["gps"]["curve_mean"])
    self.assertTrue(np.all(np.isfinite(curve)))
    self.assertLessEqual(curve[-1], curve[40])


if __name__ == "__main__":
  tf.test.main()
