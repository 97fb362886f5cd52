"""The shared run loop (trainers.loop), the run-directory contract and the generated flags."""

import dataclasses
import json
import os
from typing import Optional

import numpy as np
import tensorflow as tf
from absl import flags

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from keras_l2o import run_directory
from scripts import config_flags
from trainers import base
from trainers import bptt
from trainers import loop
from trainers import pes


@dataclasses.dataclass
class SearchConfig:
  """A toy trainer's settings: every field a flag."""
  num_steps: int = base.config_field(4, "Meta-steps.", lower_bound=1)
  scale: float = base.config_field(0.5, "Step size of the search.", number="positive")
  validation_every: int = base.config_field(2, "Meta-steps between validations.", lower_bound=1)
  validation_problems: int = base.config_field(2, "Held-out problems.", lower_bound=1)
  horizon: int = base.config_field(5, "Inner steps of a validation.", lower_bound=1)
  patience: Optional[int] = base.config_field(None, "Early stopping.", lower_bound=1)
  checkpoint_every: int = base.config_field(2, "Meta-steps between checkpoints.", lower_bound=1)
  log_every: int = base.config_field(1, "Meta-steps between records.", lower_bound=1)
  learning_rate: float = base.config_field(1.0, "Multiplier of the rule's output.")
  seed: int = base.config_field(0, "Seed.")

  def validate(self):
    base.check_positive_ints(self, ("num_steps", "validation_every", "horizon"))


class DeterministicSearch(loop.MetaTrainer):
  """A whole trainer: each meta-step moves the learned_lr rule's meta-parameters by -scale.

  (The loop supplies restore, validation, best, early stopping, checkpoints, exports.)
  """

  name = section = "search"

  def __init__(self, family, config, save_dir):
    self._init_run("learned_lr", family, config, save_dir)
    self._init_meta(self.rule.init_meta_params(config.seed))
    self._init_checkpoint()

  def meta_step(self, step):
    for v in self._flat_meta:
      v.assign_sub(self.config.scale * tf.ones_like(v))
    return {"meta_loss": float(step)}

  def validate(self):
    losses = []
    for i in range(self.config.validation_problems):
      problem = self.family.sample("validation", i)
      state = unroll_lib.init_state(self.rule, self.family, problem.tensors)
      out, final, _ = unroll_lib.unroll(self.rule, self.meta_vars, self.family,
                                              problem.tensors, state, self.config.horizon)
      losses.append(float(final))
      del out
    return float(np.mean(losses))


class MetaTrainerTest(tf.test.TestCase):

  def _family(self):
    return problems.get("quadratic", num_quadratics=4)

  def test_a_new_trainer_gets_records_checkpoints_exports_and_resume(self):
    save_dir = os.path.join(self.get_temp_dir(), "whole")
    whole = DeterministicSearch(self._family(), SearchConfig(), save_dir).run()
    self.assertEqual(whole["steps"], 4)
    records = run_directory.MetricsLog(save_dir).read()
    self.assertEqual([r["step"] for r in records], [0, 1, 2, 3, 4])
    self.assertEqual([r["meta_loss"] for r in records[1:]], [0.0, 1.0, 2.0, 3.0])
    self.assertEqual([r.get("validation_loss") is not None for r in records],
                     [True, False, True, False, True])
    self.assertAllClose(whole["best_validation_loss"],
                        min(r["validation_loss"] for r in records if "validation_loss" in r))
    config = run_directory.read_config(save_dir)
    self.assertEqual((config["trainer"], config["version"], config["search"]["scale"]),
                     ("search", run_directory.CONFIG_VERSION, 0.5))
    final = keras_l2o.load(save_dir)
    self.assertEqual(base.digest(final.meta_params), whole["meta_params_sha256"])
    self.assertTrue(os.path.isdir(os.path.join(save_dir, "best")))
    # Stopped after 2 meta-steps, resumed by a new trainer to 4: the same result.
    split = os.path.join(self.get_temp_dir(), "split")
    DeterministicSearch(self._family(), SearchConfig(num_steps=2), split).run()
    resumed = DeterministicSearch(self._family(), SearchConfig(), split).run()
    self.assertEqual(resumed, whole)
    self.assertEqual(run_directory.MetricsLog(split).read(), records)

  def test_patience_stops_the_loop(self):
    # Every step makes the learned learning rate smaller: validation gets worse after step 0.
    result = DeterministicSearch(self._family(), SearchConfig(num_steps=20, validation_every=1,
                                                              patience=2, scale=3.0),
                                 self.get_temp_dir()).run()
    self.assertTrue(result["stopped_early"])
    self.assertEqual(result["steps"], 2)


class RunDirectoryTest(tf.test.TestCase):

  def test_config_round_trip_and_versions(self):
    save_dir = self.get_temp_dir()
    config = run_directory.run_config(
        trainer="search", rule={"name": "learned_lr"}, family=problems.get("quadratic"),
        trainer_config={"search": run_directory.config_dict(SearchConfig())},
        versions={"keras_l2o": "x"}, extra={"settings": {"seed": 3}})
    run_directory.write_config(save_dir, config)
    read = run_directory.read_config(save_dir)
    self.assertEqual(read, config)
    self.assertEqual(read["version"], run_directory.CONFIG_VERSION)
    self.assertEqual(read["problem_family"]["class"], "Quadratic")
    self.assertEqual(run_directory.saved_settings(save_dir), {"seed": 3})
    self.assertTrue(run_directory.is_run(save_dir))

  def test_old_and_future_versions(self):
    save_dir = self.get_temp_dir()
    path = os.path.join(save_dir, run_directory.CONFIG_FILE)
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"format": run_directory.RUN_FORMAT}, f)
    self.assertEqual(run_directory.read_config(save_dir)["version"], 1)
    with self.assertRaisesRegex(run_directory.RunDirectoryError, "has no 'settings' object"):
      run_directory.saved_settings(save_dir)
    with open(path, "w", encoding="utf-8") as f:
      json.dump({"format": run_directory.RUN_FORMAT, "version": 99}, f)
    with self.assertRaisesRegex(run_directory.RunDirectoryError,
                                "has version 99; this keras_l2o reads versions 1 to 2"):
      run_directory.read_config(save_dir)

  def test_export_path(self):
    self.assertEqual(run_directory.export_path("/r", "best"), os.path.join("/r", "best"))
    with self.assertRaisesRegex(ValueError, r"must be one of \['final', 'best', 'last'\]. "
                                "Received: which='worst'"):
      run_directory.export_path("/r", "worst")

  def test_config_dict_writes_tuples_as_lists(self):
    from trainers.gps import trainer as gps_trainer  # pylint: disable=g-import-not-at-top
    values = run_directory.config_dict(gps_trainer.GPSConfig(momentum_rates=(0.1, 0.2)))
    self.assertEqual(values["momentum_rates"], [0.1, 0.2])
    self.assertEqual(values["iterations"], 10)


class ConfigFlagsTest(tf.test.TestCase):

  def test_flags_follow_the_fields(self):
    values = flags.FlagValues()
    defined = config_flags.define_config_flags(SearchConfig, flag_values=values)
    self.assertEqual(defined, tuple(f.name for f in dataclasses.fields(SearchConfig)))
    values(["prog", "--scale=2.5", "--num_steps=7"])
    config = config_flags.config_from_flags(SearchConfig, {n: values[n].value for n in defined},
                                            seed=9)
    self.assertEqual((config.num_steps, config.scale, config.seed, config.horizon),
                     (7, 2.5, 9, 5))
    with self.assertRaisesRegex(flags.IllegalFlagValueError, "num_steps"):
      values(["prog", "--num_steps=0"])

  def test_trainer_configs_declare_every_flag_once(self):
    values = flags.FlagValues()
    bptt_flags = config_flags.define_config_flags(bptt.BPTTConfig, flag_values=values)
    pes_flags = config_flags.define_config_flags(pes.PESConfig, flag_values=values)
    self.assertEqual(pes_flags, ("min_horizon", "max_horizon", "num_pairs", "sigma",
                                 "validation_horizon", "meta_loss_data", "vectorized"))
    self.assertNotIn("estimator", config_flags.flag_names(pes.PESConfig))
    self.assertEqual(len(bptt_flags), len(dataclasses.fields(bptt.BPTTConfig)))
    values(["prog"])
    # The command line's own defaults where they differ from the dataclass's.
    self.assertIsNone(values["num_steps"].value)
    self.assertIsNone(values["horizon"].value)
    self.assertEqual(values["meta_learning_rate"].value, 1e-3)
    self.assertEqual(values["meta_objective"].parser.enum_values, ["sum", "log_ratio"])
    for config_class in (bptt.BPTTConfig, pes.PESConfig):
      for field in config_flags.flag_fields(config_class):
        self.assertIn("help", field.metadata, msg=f"{config_class.__name__}.{field.name}")
    off = config_flags.config_from_flags(
        bptt.BPTTConfig, {**{n: values[n].value for n in bptt_flags}, "meta_clipnorm": 0.0},
        num_steps=3, horizon=20, validation_every=1, validation_problems=1)
    self.assertIsNone(off.meta_clipnorm)

  def test_registry_builds_every_trainer_from_its_entry(self):
    from trainers import registry  # pylint: disable=g-import-not-at-top
    self.assertEqual(registry.names(), ["bptt", "gps", "pes", "es"])
    gps = registry.get("gps")
    self.assertEqual((gps.default_rule, gps.step_field), ("gps_lstm", "iterations"))
    self.assertEqual(gps.for_rule("gps_policy").trainer_class().__name__, "GPSTrainer")
    self.assertEqual(gps.for_rule("gps_lstm").trainer_class().__name__, "GroupGPSTrainer")
    self.assertEqual(registry.get("bptt").trainer_class("parameter_server").__name__,
                     "AsyncBPTTTrainer")
    self.assertEqual(dict(registry.get("es").fixed), {"estimator": "es"})
    with self.assertRaisesRegex(ValueError, r"--trainer='nes' is not available\. Valid trainers: "
                                r"bptt, gps, pes, es\."):
      registry.get("nes")
    # Every field of every registered configuration that is a flag declares its help.
    for config_class in registry.config_classes():
      for field in config_flags.flag_fields(config_class):
        self.assertIn("help", field.metadata, msg=f"{config_class.__name__}.{field.name}")

  def test_fields_check_themselves_from_their_metadata(self):
    from trainers.gps import config as gps_config  # pylint: disable=g-import-not-at-top
    cases = [(bptt.BPTTConfig(time_weights="last"), r"`time_weights` must be one of "
              r"\['uniform', 'increasing', 'final'\]\. Received: time_weights='last'"),
             (bptt.BPTTConfig(meta_clipnorm=0.0), r"`meta_clipnorm` must be a positive number"),
             (pes.PESConfig(validation_horizon=0), r"`validation_horizon` must be a positive "
              r"integer\. Received: validation_horizon=0"),
             (gps_config.GroupGPSConfig(init_noise=-1.0), r"`init_noise` must be a positive "
              r"number\. Received: init_noise=-1\.0"),
             (gps_config.GPSConfig(nu_mode="x"), r"`nu_mode` must be one of \['lm', 'default'\]")]
    for config, message in cases:
      with self.assertRaisesRegex(ValueError, message):
        config.validate()
    for config in (bptt.BPTTConfig(patience=None), pes.PESConfig(), gps_config.GPSConfig(),
                   gps_config.GroupGPSConfig()):
      config.validate()  # the defaults pass

  def test_a_new_option_is_one_field(self):
    # `checkpoints_kept` is declared once, in TruncationConfig: BPTT and PES get the flag,
    # its check, its config.json entry, and the run loop keeps that many checkpoints.
    values = flags.FlagValues()
    config_flags.define_config_flags(bptt.BPTTConfig, flag_values=values)
    values(["prog", "--checkpoints_kept=1"])
    self.assertEqual(values["checkpoints_kept"].value, 1)
    with self.assertRaisesRegex(ValueError, r"`checkpoints_kept` must be a positive integer\. "
                                r"Received: checkpoints_kept=0"):
      pes.PESConfig(checkpoints_kept=0).validate()
    save_dir = os.path.join(self.get_temp_dir(), "kept")
    config = bptt.BPTTConfig(num_steps=4, unroll_length=5, horizon=10, validation_every=4,
                             validation_problems=1, checkpoint_every=1, checkpoints_kept=2)
    bptt.BPTTTrainer(keras_l2o.rules.get("mlp", hidden_size=2),
                     problems.get("quadratic", num_quadratics=2), config, save_dir).run()
    state = tf.train.get_checkpoint_state(os.path.join(save_dir, "checkpoints"))
    self.assertLen(state.all_model_checkpoint_paths, 2)
    self.assertEqual(run_directory.read_config(save_dir)["bptt"]["checkpoints_kept"], 2)


if __name__ == "__main__":
  tf.test.main()
