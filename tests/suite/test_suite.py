"""The held-out task suite: metrics, tuning protocol, resume, split and every task's first step."""

import functools
import json
import math
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import meta_params as meta_params_lib
from keras_l2o import problems
from keras_l2o import suite
from keras_l2o.suite import base
from keras_l2o.suite import environment as environment_lib
from keras_l2o.suite import optimizers
from keras_l2o.suite import split
from keras_l2o.suite import summary
from tests import testing_utils
from tests.suite import suite_stub

_REPO = testing_utils.REPO_ROOT
_REFERENCE = [1.0 - 0.05 * j for j in range(20)]  # 20 windows of 10 steps; ends at 0.05

StubRunner = suite_stub.StubRunner



class MetricsTest(tf.test.TestCase):

  def test_final_loss_is_the_mean_of_the_last_five_percent(self):
    self.assertAllClose(suite.final_loss(np.arange(100.0)), 97.0)  # mean of 95..99
    self.assertEqual(suite.final_loss([1.0, math.nan, 0.5]), math.inf)

  def test_speedup_on_hand_made_curves(self):
    stalls = [0.9, 0.7] + [0.5] * 18  # ends at 0.5; the reference first reaches 0.5 at window 10
    self.assertAllClose(suite.speedup(stalls, _REFERENCE, 200), 110 / 200)
    faster = [0.5, 0.2, 0.04] + [0.01] * 17  # reaches the reference's 0.05 in 30 steps
    self.assertAllClose(suite.speedup(faster, _REFERENCE, 200), 200 / 30)
    self.assertEqual(suite.speedup(_REFERENCE, _REFERENCE, 200), 1.0)
    self.assertEqual(suite.speedup([0.5, math.nan] + [0.1] * 18, _REFERENCE, 200), 0.0)
    self.assertEqual(suite.speedup(faster, [math.inf] * 20, 200), math.inf)
    self.assertEqual(suite.steps_to_reach(_REFERENCE, 0.001, 200), None)

  def test_divergence(self):
    self.assertTrue(suite.diverged([1.0, 3.0], initial_loss=2.0))
    self.assertTrue(suite.diverged([1.0, math.inf], initial_loss=2.0))
    self.assertFalse(suite.diverged([1.0, 1.5], initial_loss=2.0))

  def test_iqm_of_a_known_array(self):
    self.assertAllClose(suite.iqm(np.arange(1.0, 9.0)), 4.5)  # mean of 3, 4, 5, 6
    value, low, high = suite.iqm_interval([0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 100.0, 100.0])
    self.assertAllClose(value, 1.0)
    self.assertLessEqual(low, value)
    self.assertGreaterEqual(high, value)
    self.assertLess(high, 100.0)


class ProtocolTest(tf.test.TestCase):

  def setUp(self):
    super().setUp()
    self.spec = suite.get("wine_mlp_deep_gelu")
    self.store = suite.RunStore(tempfile.mkdtemp(dir=self.get_temp_dir()))
    self.choices = [suite.baseline("adam"), suite.baseline("adamw"), suite.baseline("adam@1e-3")]

  def test_tuned_rate_is_the_grid_argmin(self):
    runner = StubRunner()
    tuned = suite.tune(self.spec, suite.baseline("adam"), self.store, runner)
    self.assertEqual(tuned["setting"], {"learning_rate": 3e-3})
    self.assertEqual(len(tuned["scores"]), len(optimizers.FULL_LR_GRID))  # interior: no extension
    self.assertEqual(tuned["searched_rates"], list(optimizers.FULL_LR_GRID))
    self.assertAllClose(tuned["scores"]["learning_rate=0.003"],
                        (math.log10(3e-3) + 2.5) ** 2 + 100.0)
    self.assertEqual(tuned["scores"]["learning_rate=0.1"], math.inf)  # diverged: never chosen
    self.assertFalse(tuned["at_grid_edge"])
    tuned = suite.tune(self.spec, suite.baseline("adamw"), self.store, runner)
    self.assertEqual(tuned["setting"]["learning_rate"], 3e-3)

  def test_grid_extends_past_an_edge_and_stops_at_the_bound(self):
    runner = StubRunner(centre=-5.5)  # best rate 3e-6: below the bound 1e-5
    tuned = suite.tune(self.spec, suite.baseline("adam", quick=True), self.store, runner)
    self.assertEqual(tuned["searched_rates"], [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2])
    self.assertEqual(tuned["setting"], {"learning_rate": 1e-5})  # the argmin of all 7
    self.assertTrue(tuned["at_grid_edge"])  # stopped by the bound, and says so
    self.assertLen(runner.calls, 7)
    runner = StubRunner(centre=-0.4, diverge_at=10.0)  # best rate 0.4: above the quick grid
    tuned = suite.tune(self.spec, suite.baseline("adamw", quick=True), self.store, runner)
    self.assertEqual(tuned["searched_rates"], [1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0])
    self.assertEqual(tuned["setting"], {"learning_rate": 0.3, "weight_decay": 0.01})
    self.assertFalse(tuned["at_grid_edge"])  # 0.3 is interior once 1.0 was searched
    self.assertEqual(suite.tuning.next_rate(1.0, +1), 3.0)  # out of bounds: never searched

  def test_extension_runs_every_weight_decay_and_grows_the_progress_bar(self):
    choice = suite.Choice("adamw", suite.baseline("adamw").make,
                          optimizers.setting_grid("adamw", quick=False)[:4])  # 1e-4, 3e-4 x 2
    runner = StubRunner(centre=-4.6)
    bar = keras.utils.Progbar(suite.count_runs(["x"], [choice], (0,)), verbose=0)
    results = suite.evaluate_suite([self.spec.name], [choice], self.store, (0,), runner, bar)
    entry = results[self.spec.name]["adamw"]
    self.assertEqual(entry["searched_rates"], [1e-5, 3e-5, 1e-4, 3e-4])
    self.assertEqual(entry["setting"], {"learning_rate": 3e-5, "weight_decay": 0.01})
    self.assertEqual(sorted({lr for _, lr in runner.calls[4:8]}), [1e-5, 3e-5])  # both decays
    self.assertLen(runner.calls, 4 * 2 + 1)
    self.assertEqual(bar.target, len(runner.calls))
    self.assertEqual(bar._seen_so_far, bar.target)  # pylint: disable=protected-access
    self.assertEqual([seed for seed, _ in runner.calls[:-1]], [10_000] * 8)  # tuning: validation
    self.assertEqual(runner.calls[-1], (0, 3e-5))  # the test seed runs only the chosen setting

  def test_tuning_never_sees_test_seeds(self):
    runner = StubRunner()
    results = suite.evaluate_task(self.spec, self.choices, self.store, (0, 1, 2), runner)
    grid_size = len(optimizers.FULL_LR_GRID)
    tuning = runner.calls[:grid_size]  # adam's grid comes first
    self.assertEqual({seed for seed, _ in tuning}, set(suite.VALIDATION_SEEDS))
    self.assertEqual(sorted(lr for _, lr in tuning), sorted(optimizers.FULL_LR_GRID))
    tested = [seed for seed, _ in runner.calls if seed not in suite.VALIDATION_SEEDS]
    self.assertEqual(len(tested), 3 * 3)
    self.assertEqual(len(runner.calls), grid_size * 3 + 9)  # adamw: 7 rates x 2 decays
    self.assertEqual([r["validation"]["loss"] for r in results["adam"]["runs"]],
                     [(math.log10(3e-3) + 2.5) ** 2 + 0.01 * s for s in (0, 1, 2)])
    self.assertEqual(results["adam"]["searched_rates"], list(optimizers.FULL_LR_GRID))
    with self.assertRaisesRegex(ValueError, r"Test seeds \[0, 10000\] overlap the validation"):
      suite.evaluate_task(self.spec, self.choices, self.store, (0, 10_000), runner)

  def test_resume_skips_finished_runs(self):
    runner = StubRunner()
    first = suite.evaluate_task(self.spec, self.choices, self.store, (0,), runner)
    made = len(runner.calls)
    self.assertEqual(made, suite.count_runs(["x"], self.choices, (0,)))
    again = suite.evaluate_task(self.spec, self.choices, self.store, (0,), runner)
    self.assertLen(runner.calls, made)  # nothing rerun
    self.assertEqual(again["adam"]["runs"], first["adam"]["runs"])
    os.remove(self.store.path(self.spec.name, "adam@1e-3", 0, "untuned"))
    suite.evaluate_task(self.spec, self.choices, self.store, (0,), runner)
    self.assertLen(runner.calls, made + 1)  # only the removed run

  def test_report_only_leaves_out_unfinished_tasks(self):
    suite.evaluate_task(self.spec, self.choices, self.store, (0,), StubRunner())
    with self.assertRaisesRegex(suite.MissingRun, "'diabetes_mlp_relu', seed 10000: a run is not"):
      suite.evaluate_task(suite.get("diabetes_mlp_relu"), self.choices, self.store, (0,),
                          suite.stored_only)
    results = suite.evaluate_suite([self.spec.name, "diabetes_mlp_relu"], self.choices,
                                   self.store, (0,), suite.stored_only)
    self.assertEqual(list(results), [self.spec.name])

  def test_summary_counts_wins_and_self_speedup(self):
    results = suite.evaluate_task(self.spec, self.choices, self.store, (0,), StubRunner())
    rows = summary.task_rows(results)
    self.assertEqual(rows["adamw"]["speedup"], 1.0)
    self.assertFalse(rows["adamw"]["at_grid_edge"])  # 3e-3 is inside the 1e-4 .. 0.1 grid
    across = summary.across_tasks({"wine": rows})
    self.assertEqual(across["adam"]["wins"]["adam@1e-3"], {"wins": 1, "tasks": 1})
    self.assertEqual(across["adam@1e-3"]["wins"]["adam"], {"wins": 0, "tasks": 1})


class LearnedOnScheduleTest(tf.test.TestCase):

  def test_a_scheduled_entry_peaks_at_the_cards_rate_over_the_horizon(self):
    plain = optimizers.learned("pretrained:l2o-mlp-general", keras_l2o.pretrained.get)
    scheduled = optimizers.learned("pretrained:l2o-mlp-general+cosine", keras_l2o.pretrained.get,
                                   on_schedule=True)
    self.assertFalse(scheduled.tuned)
    optimizer = scheduled.make(400)  # warm-up over 20 steps, cosine to 0 at step 400
    rates = []
    for step in (0, 10, 20, 210, 400):
      optimizer.iterations.assign(step)
      rates.append(float(optimizer.learning_rate))
    self.assertAllClose(rates, [0.0, 0.5, 1.0, 0.5, 0.0], atol=1e-6)
    self.assertEqual(optimizer.rule, plain.make(400).rule)
    expected = keras_l2o.pretrained.meta_params()
    for (path, value), (_, want) in zip(meta_params_lib.flatten_with_paths(optimizer.meta_params),
                                        meta_params_lib.flatten_with_paths(expected)):
      self.assertAllEqual(np.asarray(value), want, msg=path)
    self.assertEqual(float(plain.make(400).learning_rate), 1.0)  # the plain entry keeps its rate
    decayed = optimizers.on_warmup_cosine(keras_l2o.pretrained.get(weight_decay=0.003), 400)
    self.assertEqual((decayed.weight_decay, optimizer.weight_decay), (0.003, None))


class ScheduleFreeTest(tf.test.TestCase):
  """The suite's schedule-free AdamW against the algorithm of Defazio et al. (2024)."""

  @staticmethod
  def _reference(steps, lr=0.1, beta_1=0.9, beta_2=0.999):
    z = x = y = 0.0  # on f(w) = (w - 3)^2 / 2, without warm-up: the average weight is 1/t
    velocity = 0.0
    for t in range(1, steps + 1):
      g = y - 3.0
      velocity = beta_2 * velocity + (1 - beta_2) * g * g
      z -= lr * g / (math.sqrt(velocity / (1 - beta_2 ** t)) + 1e-8)
      x += (z - x) / t
      y = (1 - beta_1) * z + beta_1 * x
    return y

  def test_matches_the_documented_algorithm(self):
    w = keras.Variable(np.zeros(1, np.float32))
    optimizer = suite.schedule_free.ScheduleFreeAdamW(0.1)
    for _ in range(50):
      optimizer.apply([w.value - 3.0], [w])
    self.assertAllClose(w.numpy()[0], self._reference(50), rtol=1e-5)
    self.assertAllClose(self._reference(50), 2.25074, atol=1e-5)

  def test_the_first_fit_step_keeps_the_initial_weights(self):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    before = model.layers[0].kernel.numpy().copy()
    model.compile(optimizers.baseline("schedule_free_adamw").make(1000, learning_rate=1e-9),
                  "mse")
    model.fit(np.ones((8, 4), np.float32), np.zeros((8, 3), np.float32), batch_size=8,
              verbose=0)
    self.assertAllClose(model.layers[0].kernel.numpy(), before, atol=1e-6)  # not wiped to ~0


class SplitTest(tf.test.TestCase):

  def test_suite_and_meta_training_problems_are_disjoint(self):
    self.assertEqual(suite.overlaps(), {})
    self.assertIn(("mnist", "mlp"), suite.training_uses())
    self.assertIn(("digits", "conv"), suite.training_uses())

  def test_a_newly_registered_family_is_covered(self):
    name = "suite_test_breast_cancer_mlp"
    problems.register(name, functools.partial(problems.MLPFamily, dataset="breast_cancer"))
    try:
      self.assertEqual(split.identities(name), {("breast_cancer", "mlp")})
      self.assertEqual(list(suite.overlaps()), ["breast_cancer_mlp_tanh"])
    finally:
      problems._REGISTRY.pop(name)  # pylint: disable=protected-access


class TasksTest(tf.test.TestCase):

  def test_registry(self):
    self.assertGreaterEqual(len(suite.names()), 12)
    for name in suite.names():
      spec = suite.get(name)
      self.assertBetween(spec.horizon, 1000, 10000)
      self.assertEqual(spec.horizon % 40, 0)  # whole training windows
    kinds = {suite.get(n).architecture for n in suite.names()}
    self.assertEqual(kinds, set(suite.ARCHITECTURES))
    with self.assertRaisesRegex(ValueError, "Unknown suite task 'nope'. Valid tasks: "):
      suite.get("nope")
    with self.assertRaisesRegex(ValueError, r"horizon must be in \[1000, 10000\]. Received: 50"):
      base.register("short", kind="regression", dataset="d", architecture="mlp", horizon=50,
                    batch_size=1)

  def test_every_task_builds_and_takes_a_finite_step(self):
    params = {}
    for name in suite.names():
      keras.utils.set_random_seed(0)
      task = suite.get(name).build(0, batch_size=4)
      task.model.compile(keras.optimizers.Adam(1e-3), task.loss, run_eagerly=True)
      loss = task.model.train_on_batch(task.train[0][:4], task.train[1][:4])
      self.assertTrue(np.isfinite(loss), msg=name)
      self.assertGreater(len(task.validation[0]), 0, msg=name)
      self.assertGreater(len(task.test[0]), 0, msg=name)
      params[name] = task.model.count_params()
    self.assertGreater(max(params.values()), 1_000_000)

  def test_a_run_in_another_process_under_load_is_bit_identical(self):
    # A fresh process trains a tiny conv task while this one trains it too (each loads the
    # other's cores), both at TensorFlow's default thread counts: same curve to the last bit.
    code = ("import json, keras; from keras_l2o import suite; "
            "r = suite.run(suite.get('mnist_conv'), 5, lambda h: keras.optimizers.Adam(1e-2), "
            "windows=4, horizon=24, batch_size=16); "
            "print(json.dumps([r['curve'], r['test']['loss'], r['environment']]))")
    env = dict(os.environ, PYTHONPATH=_REPO)
    process = subprocess.Popen([sys.executable, "-c", code], cwd=_REPO, env=env,
                               stdout=subprocess.PIPE, text=True)
    here = suite.run(suite.get("mnist_conv"), 5, lambda h: keras.optimizers.Adam(1e-2),
                     windows=4, horizon=24, batch_size=16)
    there = json.loads(process.communicate(timeout=300)[0].strip().splitlines()[-1])
    self.assertEqual(there, [here["curve"], here["test"]["loss"], here["environment"]])
    self.assertTrue(all(math.isfinite(v) for v in here["curve"]))

  def test_a_run_from_another_environment_is_not_reused(self):
    here = suite.environment.describe()
    store = suite.RunStore(tempfile.mkdtemp(dir=self.get_temp_dir()), environment=here)
    store.put("t", "adam", 0, "untuned", {"curve": [1.0], "environment": here})
    self.assertEqual(store.get("t", "adam", 0, "untuned")["curve"], [1.0])
    for changed in ({**here, "code": "0" * 16}, {**here, "intra_op_threads": 7}, None):
      store.put("t", "adam", 0, "untuned", {"curve": [1.0], "environment": changed})
      with self.assertLogs(level="WARNING") as logs:
        self.assertIsNone(store.get("t", "adam", 0, "untuned"))
      self.assertIn("Not reusing", logs.output[0])
    self.assertEqual(suite.RunStore(store.directory).get("t", "adam", 0, "untuned")["curve"],
                     [1.0])  # a store without an environment reuses every run

  def test_code_fingerprint_covers_what_runs(self):
    files = set(environment_lib._files(  # pylint: disable=protected-access
        os.path.join(_REPO, "keras_l2o")))
    self.assertIn(os.path.join("suite", "training.py"), files)
    self.assertIn(os.path.join("suite", "optimizers.py"), files)
    self.assertIn(os.path.join("rules", "mlp.py"), files)
    self.assertIn(os.path.join("pretrained", "l2o-mlp-general.npz"), files)
    self.assertNotIn(os.path.join("suite", "report.py"), files)  # reporting changes no run
    self.assertRegex(suite.environment.code_fingerprint(), "^[0-9a-f]{16}$")

  def test_a_short_fit_run_is_deterministic(self):
    spec = suite.get("diabetes_mlp_relu")
    first, second = (suite.run(spec, 3, lambda h: keras.optimizers.Adam(1e-2), windows=2,
                               horizon=10, batch_size=8) for _ in range(2))
    self.assertLen(first["curve"], 2)
    self.assertEqual(first["curve"], second["curve"])
    self.assertLess(first["curve"][1], first["initial_loss"])
    self.assertEqual(sorted(first["test"]), ["loss"])


class CommandLineTest(tf.test.TestCase):
  """`keras-l2o-evaluate --suite=general`, each call in its own process (tests/suite/suite_stub.py).

  `scripts.evaluate` defines flags that other scripts imported by other test
  files define too; a process of its own keeps them apart, as a user's run is.
  """

  def _main(self, *args):
    result = subprocess.run(
        [sys.executable, "-m", "tests.suite.suite_stub", "--suite=general", *args], cwd=_REPO,
        capture_output=True, text=True, timeout=600, check=False)
    self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])

  def test_errors_name_what_is_allowed(self):
    self.assertIn("'pretrained:nope': NAME must be one of ", self._main(
        "--optimizers=pretrained:nope", "--output_dir=/tmp/unused")["error"])
    self.assertIn("--suite_tasks: unknown ['nope']", self._main(
        "--suite_tasks=nope", "--output_dir=/tmp/unused")["error"])
    self.assertIn("Unknown suite baseline 'sgd'", self._main(
        "--suite_baselines=sgd", "--output_dir=/tmp/unused")["error"])

  def test_quick_run_writes_the_report(self):
    output = tempfile.mkdtemp(dir=self.get_temp_dir())
    calls = self._main("--quick", "--suite_tasks=wine_mlp_deep_gelu", "--output_dir=" + output,
                       "--optimizers=pretrained:l2o-mlp-general",
                       "--suite_baselines=adam@1e-3,adamw")["calls"]
    # learned (1 test seed), adam@1e-3 (1), AdamW: its 3-point quick grid on the validation seed, 1.
    self.assertEqual([seed for seed, _ in calls], [0, 0, 10_000, 10_000, 10_000, 0])
    with open(os.path.join(output, "results.json"), encoding="utf-8") as f:
      document = json.load(f)
    self.assertEqual(document["protocol"]["grids"]["adamw"], [
        "learning_rate=0.001,weight_decay=0.01", "learning_rate=0.003,weight_decay=0.01",
        "learning_rate=0.01,weight_decay=0.01"])
    self.assertEqual(document["rows"]["wine_mlp_deep_gelu"]["adamw"]["speedup"], 1.0)
    self.assertTrue(os.path.exists(os.path.join(output, "plots", "summary.png")))
    with open(os.path.join(output, "report.md"), encoding="utf-8") as f:
      text = f.read()
    self.assertIn("| adamw | lr=0.003,wd=0.01 (searched 0.001..0.01, 3 rates) |", text)  # interior
    self.assertIn("Grid rule: while the argmin's learning rate is the smallest", text)
    self.assertIn("intra_op_threads 1", text)


if __name__ == "__main__":
  tf.test.main()
