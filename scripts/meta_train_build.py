"""`keras-l2o-meta-train`: the chosen trainer's configuration and the function that builds it.

Every trainer is built the same way from its registry entry
(`trainers.registry.TrainerSpec`): its configuration dataclass gets the
flags of its fields (`scripts.config_flags`; an unset flag whose default is
None takes the field's default), the fields of its JSON flag (e.g.
`--gps_config`) and the problem's defaults for that flag, and the resolved
settings (`--num_steps` into its `step_field`, the horizon, the validation
counts) and the fields its name fixes (`--trainer=es`: `estimator="es"`).
"""

import dataclasses
import inspect

from absl import app

from . import cli
from . import config_flags
from . import meta_train_defaults
from . import meta_train_resume
from . import meta_train_settings


def _settings_fields(spec, settings) -> dict:
  """The configuration fields the resolved settings and the trainer's name set."""
  names = {f.name for f in dataclasses.fields(spec.config)}
  fields = {spec.step_field: settings["num_steps"],
            "validation_every": settings["validation_every"],
            "validation_problems": settings["validation_problems"]}
  if "horizon" in names:
    fields["horizon"] = settings["horizon"]
  fields.update(spec.fixed)
  return fields


def _json_fields(spec, args, flag_set) -> dict:
  """The fields of the trainer's JSON flag, then the problem's defaults for it (not given)."""
  if spec.json_flag is None:
    return {}
  extra = meta_train_settings.json_flag(args, spec.json_flag) or {}
  clash = sorted(set(extra) & set(flag_set))
  if clash:
    raise app.UsageError(
        f"--{spec.json_flag} sets {clash}, which flags set too; give each once (--num_steps "
        f"sets `{spec.step_field}`; --horizon, --validation_every, --validation_problems, "
        "--learning_rate and --seed set theirs).")
  defaults = meta_train_defaults.problem_default(args.problem, args.trainer, spec.json_flag, {})
  for name, value in defaults.items():
    extra.setdefault(name, value)
  return extra


def trainer_config(spec, args, settings):
  """The trainer's configuration, validated; app.UsageError for values it refuses."""
  fields = _settings_fields(spec, settings)
  flag_values = config_flags.given_values(spec.config, vars(args), exclude=fields)
  extra = _json_fields(spec, args, {**flag_values, **fields})
  try:
    config = spec.config(**{**extra, **flag_values, **fields})
    config.validate()
  except (TypeError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  return config


def recorded_names(spec) -> tuple:
  """The arguments a run of this trainer records in config.json's `settings`."""
  json_flags = (spec.json_flag,) if spec.json_flag else ()
  return (meta_train_resume.RUN_FLAGS + config_flags.flag_names(spec.config) + json_flags
          + meta_train_resume.STRATEGY_FLAGS)


def starting_meta_params(init_from, rule):
  """The meta-parameters `--init_from` names, as numpy arrays; None without it.

  Raises:
    app.UsageError: nothing loadable there, or its rule or configuration is
      neither `rule`'s nor one `rule` extends (`Rule.meta_params_from`).
  """
  if not init_from:
    return None
  import keras  # pylint: disable=g-import-not-at-top
  try:
    optimizer = cli.load_learned(init_from)
  except (ValueError, KeyError) as e:
    raise app.UsageError(f"--init_from={init_from!r}: {e}") from e
  params = keras.tree.map_structure(keras.ops.convert_to_numpy, optimizer.meta_params)
  try:
    return rule.meta_params_from(optimizer.rule, params)
  except ValueError:
    given = (optimizer.rule.name, optimizer.rule.get_config())
    raise app.UsageError(
        f"--init_from={init_from!r} holds rule {given[0]!r} with configuration {given[1]}; "
        f"this run trains rule {rule.name!r} with configuration {rule.get_config()}. Give "
        "--rule and --rule_config of the run it comes from.") from None


def trainer_factory(args, settings, rule, family, strategy, threading):
  """The trainer the arguments describe, as a function of no arguments that builds it.

  Args:
    args: the run's arguments (`meta_train.run_arguments`).
    settings: `meta_train_settings.resolve_settings`'s result (its `spec`: the
      trainer's registry entry).
    rule, family: the rule and the problem family.
    strategy: the `tf.distribute` strategy.
    threading: the thread-pool sizes in use.

  Raises:
    app.UsageError: for arguments the trainer cannot run with.
  """
  spec = settings["spec"]
  if spec.strategies is not None and args.strategy not in spec.strategies:
    raise app.UsageError(f"--trainer={args.trainer} runs under --strategy="
                         f"{' or '.join(spec.strategies)}; received --strategy={args.strategy}.")
  config = trainer_config(spec, args, settings)
  try:
    extra_config = meta_train_resume.recorded_settings(args, settings, recorded_names(spec),
                                                       threading)
  except (TypeError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  trainer_class = spec.trainer_class(args.strategy)
  start = {}
  if getattr(args, "init_from", None):
    if "initial_meta_params" not in inspect.signature(trainer_class).parameters:
      raise app.UsageError(f"--init_from: --trainer={args.trainer} always starts from its own "
                           "initial policy; --init_from works with the truncated trainers "
                           "(bptt, pes, es).")
    start["initial_meta_params"] = starting_meta_params(args.init_from, rule)
  return lambda: trainer_class(rule, family, config, args.save_dir, extra_config=extra_config,
                               strategy=strategy, **start)
