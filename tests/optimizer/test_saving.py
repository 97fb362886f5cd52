"""Saving and restoring a `LearnedOptimizer` resumes training bit for bit.

A reference run trains a digits MLP for 4 epochs without interruption and, at
the end of epoch 2, writes both a `.keras` file and a `tf.train.Checkpoint`
and records the optimizer's meta-parameters, rule state and `iterations`.
Restoring either and training the remaining 2 epochs must reproduce the
reference exactly. The meta-parameters are non-default, so restoring them is
really tested.
"""

import copy
import json
import os
import shutil
import tempfile

from absl.testing import parameterized
import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import rules

from tests import testing_utils

LEARNED_RULES = ("lstm", "mlp")
NUM_SAMPLES = 128
BATCH_SIZE = 16
SAVE_EPOCH = 2
TOTAL_EPOCHS = 4
STEPS_PER_EPOCH = NUM_SAMPLES // BATCH_SIZE


def _perturbed_meta_params(rule, seed=3):
  """`rule.init_meta_params(seed)` plus noise: values no constructor default produces."""
  rng = np.random.default_rng(seed)
  return tf.nest.map_structure(
      lambda t: t.numpy() + rng.normal(0.0, 0.05, t.shape).astype(np.float32),
      rule.init_meta_params(seed))


def _numpy(values):
  return tf.nest.map_structure(lambda v: np.array(keras.ops.convert_to_numpy(v)), values)


def _optimizer_snapshot(optimizer, model):
  return {
      "meta_params": _numpy(optimizer.meta_params),
      "state": [_numpy(list(optimizer.state_for(v))) for v in model.trainable_variables],
      "iterations": int(optimizer.iterations),
      "weights": testing_utils.weights_of(model),
  }


def _fit(model, epochs, **kwargs):
  x, y = testing_utils.digits(NUM_SAMPLES)
  return model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=False, verbose=0, **kwargs)


def _compile(model, optimizer):
  model.compile(optimizer=optimizer, loss=testing_utils.loss_fn(), jit_compile=False)


class _SaveAtEpoch(keras.callbacks.Callback):
  """Writes a .keras file and a checkpoint after epoch `SAVE_EPOCH`, and snapshots the optimizer."""

  def __init__(self, directory):
    super().__init__()
    os.makedirs(directory, exist_ok=True)
    self.keras_path = os.path.join(directory, "model.keras")
    self.checkpoint_prefix = os.path.join(directory, "checkpoint")
    self.snapshot = None

  def on_epoch_end(self, epoch, logs=None):
    if epoch + 1 == SAVE_EPOCH:
      self.model.save(self.keras_path)
      tf.train.Checkpoint(optimizer=self.model.optimizer, model=self.model).write(
          self.checkpoint_prefix)
      self.snapshot = _optimizer_snapshot(self.model.optimizer, self.model)


class SavingTest(tf.test.TestCase, parameterized.TestCase):

  _references = {}

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls._directory = tempfile.mkdtemp()

  @classmethod
  def tearDownClass(cls):
    shutil.rmtree(cls._directory, ignore_errors=True)
    super().tearDownClass()

  @classmethod
  def reference(cls, rule_name):
    """The uninterrupted run for `rule_name` (trained once, shared by the tests)."""
    if rule_name not in cls._references:
      rule = rules.get(rule_name)
      model = testing_utils.digits_mlp(seed=0)
      optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_perturbed_meta_params(rule))
      _compile(model, optimizer)
      saver = _SaveAtEpoch(os.path.join(cls._directory, rule_name))
      _fit(model, TOTAL_EPOCHS, callbacks=[saver])
      cls._references[rule_name] = (saver, _optimizer_snapshot(optimizer, model))
    return cls._references[rule_name]

  def assertNestedEqual(self, expected, actual):
    tf.nest.assert_same_structure(expected, actual)
    for a, b in zip(tf.nest.flatten(expected), tf.nest.flatten(actual)):
      self.assertAllEqual(a, b)

  def assertConfigEqual(self, actual, expected):
    differing = sorted(k for k in set(actual) | set(expected) if actual.get(k) != expected.get(k))
    self.assertEqual(differing, [], "config entries differ")

  def assertRestored(self, optimizer, model, snapshot):
    """`optimizer` and `model` hold exactly the values of `snapshot`."""
    self.assertEqual(snapshot["iterations"], SAVE_EPOCH * STEPS_PER_EPOCH)
    self.assertEqual(int(optimizer.iterations), snapshot["iterations"])
    self.assertNestedEqual(snapshot["meta_params"], _numpy(optimizer.meta_params))
    self.assertNestedEqual(snapshot["state"],
                           [_numpy(list(optimizer.state_for(v))) for v in model.trainable_variables])
    self.assertNestedEqual(snapshot["weights"], testing_utils.weights_of(model))

  def assertContinuesIdentically(self, optimizer, model, final):
    _fit(model, TOTAL_EPOCHS - SAVE_EPOCH)
    self.assertNestedEqual(final, _optimizer_snapshot(optimizer, model))

  @parameterized.named_parameters((rule, rule) for rule in LEARNED_RULES)
  def test_keras_file_round_trip(self, rule_name):
    saver, final = self.reference(rule_name)
    # The snapshot is not trivially restorable: the meta-parameters are not
    # the defaults and the state is not zero.
    default = rules.get(rule_name).init_meta_params(0)
    self.assertNotAllClose(tf.nest.flatten(saver.snapshot["meta_params"])[0],
                           tf.nest.flatten(default)[0])
    self.assertGreater(np.abs(saver.snapshot["state"][0][0]).max(), 0.0)

    model = keras.models.load_model(saver.keras_path)
    optimizer = model.optimizer
    self.assertIsInstance(optimizer, keras_l2o.LearnedOptimizer)
    self.assertEqual(optimizer.rule, rules.get(rule_name))
    self.assertRestored(optimizer, model, saver.snapshot)
    self.assertContinuesIdentically(optimizer, model, final)

  @parameterized.named_parameters((rule, rule) for rule in LEARNED_RULES)
  def test_checkpoint_round_trip(self, rule_name):
    saver, final = self.reference(rule_name)
    model = testing_utils.digits_mlp(seed=7)  # other weights,
    optimizer = keras_l2o.LearnedOptimizer(rule_name)  # default meta-parameters, unbuilt
    _compile(model, optimizer)
    self.assertNotAllClose(testing_utils.weights_of(model)[0], saver.snapshot["weights"][0])
    status = tf.train.Checkpoint(optimizer=optimizer, model=model).read(saver.checkpoint_prefix)
    # The rule state is created by `build`, after the restore (deferred restoration).
    optimizer.build(model.trainable_variables)
    status.assert_consumed()
    self.assertRestored(optimizer, model, saver.snapshot)
    self.assertContinuesIdentically(optimizer, model, final)

  def test_config_round_trip(self):
    rule = rules.get("lstm", preset="dm_code", hidden_size=8)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=4, decay_rate=0.7)
    keras_kwargs = {"clipnorm": 1.0, "weight_decay": 1e-3, "use_ema": True, "ema_momentum": 0.8,
                    "ema_overwrite_frequency": 5, "gradient_accumulation_steps": 2,
                    "loss_scale_factor": 4.0}
    optimizer = keras_l2o.LearnedOptimizer(rule, meta_params=_perturbed_meta_params(rule),
                                           learning_rate=schedule, nonfinite="zero", seed=4,
                                           name="custom_name", **keras_kwargs)
    config = json.loads(json.dumps(optimizer.get_config()))  # JSON-serialisable
    # (Keras's `Optimizer.from_config` deserialises the schedule in place: pass a copy.)
    rebuilt = keras_l2o.LearnedOptimizer.from_config(copy.deepcopy(config))

    self.assertIsInstance(rebuilt, keras_l2o.LearnedOptimizer)
    self.assertEqual(rebuilt.rule, rule)
    self.assertEqual(rebuilt.rule.get_config(), rule.get_config())
    self.assertNestedEqual(_numpy(optimizer.meta_params), _numpy(rebuilt.meta_params))
    self.assertIsInstance(rebuilt._learning_rate, keras.optimizers.schedules.ExponentialDecay)  # pylint: disable=protected-access
    self.assertEqual(rebuilt._learning_rate.get_config(), schedule.get_config())  # pylint: disable=protected-access
    for key, value in keras_kwargs.items():
      self.assertEqual(getattr(rebuilt, key), value, key)
    self.assertEqual((rebuilt.nonfinite, rebuilt.seed, rebuilt.name), ("zero", 4, "custom_name"))
    self.assertConfigEqual(rebuilt.get_config(), config)
    # Keras's generic (de)serialisation finds the registered class too.
    generic = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(optimizer))))
    self.assertIsInstance(generic, keras_l2o.LearnedOptimizer)
    self.assertConfigEqual(generic.get_config(), config)

    trained = []
    for opt in (optimizer, rebuilt):
      model = testing_utils.digits_mlp(seed=0)
      _compile(model, opt)
      opt.build(model.trainable_variables)
      _fit(model, SAVE_EPOCH)
      trained.append(_optimizer_snapshot(opt, model))
    # (with gradient accumulation `iterations` counts applied updates)
    self.assertEqual(trained[0]["iterations"], SAVE_EPOCH * STEPS_PER_EPOCH // 2)
    self.assertNestedEqual(trained[0], trained[1])
    self.assertNotAllClose(trained[0]["weights"][0],
                           testing_utils.weights_of(testing_utils.digits_mlp(seed=0))[0])


if __name__ == "__main__":
  tf.test.main()
