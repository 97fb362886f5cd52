"""`keras-l2o-meta-train`'s run settings: the arguments checked, per-problem defaults filled.

`resolve_settings(args)` turns the run's arguments (`meta_train.run_arguments`)
into the rule, the problem family and the settings every trainer reads
(`rule`, `rule_config`, `problem`, `problem_config`, `num_steps`,
`validation_every`, `validation_problems`, `horizon`). What a trainer accepts
(its rules, one problem family or a mixture) is its registry entry's
(`trainers.registry`); an unset setting takes the problem's default
(`ProblemFamily.meta_train_defaults`).
"""

import json

from absl import app

from . import meta_train_defaults
from . import trainers_module

# Settings whose unset value is the largest of the problems' defaults.
COUNTED = ("num_steps", "validation_every", "validation_problems")
# Rules whose `dimension` is the size of one problem's flat parameter vector, set to fit.
SIZED_RULES = ("gps_policy",)


def json_flag(args, name):
  """The JSON object of argument `name` (None when unset); app.UsageError if it is not one."""
  value = getattr(args, name)
  if value is None:
    return None
  try:
    parsed = json.loads(value)
  except json.JSONDecodeError as e:
    raise app.UsageError(f"--{name} is not valid JSON ({e}). Received: {value!r}") from e
  if not isinstance(parsed, dict):
    raise app.UsageError(f"--{name} must be a JSON object. Received: {value!r}")
  return parsed


def trainer_spec(args):
  """The registry entry of `--trainer` for the run's rule, and the rule's name."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  registry = trainers_module("registry")
  try:
    spec = registry.get(args.trainer)
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  rule_name = args.rule or spec.default_rule
  if rule_name not in keras_l2o.rules.names():
    raise app.UsageError(f"--rule={rule_name!r} is not a rule. Valid rules: "
                         f"{', '.join(keras_l2o.rules.names())}.")
  if spec.rules and rule_name not in spec.rules:
    allowed = ", ".join(spec.rules[:-1]) + " or " + spec.rules[-1]
    raise app.UsageError(f"--trainer={args.trainer} meta-trains --rule={allowed}; "
                         f"received --rule={rule_name!r}.")
  return spec.for_rule(rule_name), rule_name


def problem_configs(args) -> dict:
  """Each named problem's configuration: given, or its defaults; the data path and seed added."""
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  names = [n.strip() for n in args.problem.split(",") if n.strip()]
  unknown = [n for n in names if n not in problems.names()]
  if not names or unknown:
    raise app.UsageError(f"--problem={args.problem!r}: {unknown or 'empty'} is not a problem. "
                         f"Valid problems: {', '.join(problems.names())} (a comma list trains "
                         "across several).")
  given = json_flag(args, "problem_config")
  configs = {}
  for name in names:
    if len(names) == 1:
      config = dict(given) if given is not None else dict(
          meta_train_defaults.problem_default(name, args.trainer, "problem_config", {}))
    else:  # a mixture: --problem_config maps component names to their configs
      config = dict(meta_train_defaults.problem_default(name, None, "problem_config", {}))
      config.update((given or {}).get(name, {}))
    if args.data_path:
      config["data_path"] = args.data_path
    config.setdefault("seed", args.seed)
    configs[name] = config
  return configs


def _families(args, spec, configs):
  """The problem families; app.UsageError where the trainer cannot train on them."""
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  components = [problems.get(n, **c) for n, c in configs.items()]
  if spec.flat_full_batch and (len(components) > 1
                               or not getattr(components[0], "full_batch", False)):
    full_batch = [n for n in problems.names() if getattr(problems.get(n), "full_batch", False)]
    raise app.UsageError(f"--trainer={args.trainer} needs one full-batch problem whose "
                         f"parameters are one flat vector ({', '.join(full_batch)}); received "
                         f"--problem={args.problem!r} (--rule=gps_lstm trains on any one "
                         "problem family).")
  if spec.one_family and len(components) > 1:
    raise app.UsageError(f"--trainer={args.trainer} trains on one problem family; received "
                         f"--problem={args.problem!r}.")
  return components


def _rule(spec, rule_name, rule_config, components):
  """The rule; app.UsageError for a configuration it refuses or a rule without meta-parameters."""
  import keras_l2o  # pylint: disable=g-import-not-at-top
  sized = rule_name in SIZED_RULES
  if sized and len(components) == 1:
    # The policy sees the problem's whole flat parameter vector: size it to fit.
    rule_config.setdefault("dimension", components[0].num_parameters())
  try:
    rule = keras_l2o.rules.get(rule_name, **rule_config)
  except (ValueError, TypeError) as e:
    context = (f"--rule={rule_name} with rule_config {rule_config} (the dimension is the "
               f"problem's parameter count): " if sized else "")
    raise app.UsageError(context + str(e)) from e
  if not rule.is_learned:
    learned = [n for n in keras_l2o.rules.names() if keras_l2o.rules.get(n).is_learned]
    raise app.UsageError(f"--rule={rule_name!r} is hand-designed: it has no meta-parameters "
                         f"to train. Learned rules: {', '.join(learned)}.")
  return rule


def resolve_settings(args) -> dict:
  """Validates the run's arguments (`meta_train.run_arguments`) and fills per-problem defaults.

  Returns:
    The settings (see the module docstring), `spec` (the trainer's registry
    entry) and `objects`: `(rule, family)`.

  Raises:
    app.UsageError: an argument names nothing that exists or cannot be used.
  """
  from keras_l2o import problems  # pylint: disable=g-import-not-at-top
  spec, rule_name = trainer_spec(args)
  configs = problem_configs(args)
  names = list(configs)
  settings = {"rule": rule_name, "rule_config": json_flag(args, "rule_config"),
              "problem": args.problem,
              "problem_config": configs[names[0]] if len(names) == 1 else configs}
  for name in COUNTED:
    value = getattr(args, name)
    settings[name] = value if value is not None else max(
        meta_train_defaults.problem_default(n, args.trainer, name, 1) for n in names)
  try:
    components = _families(args, spec, configs)
    rule = _rule(spec, rule_name, settings["rule_config"], components)
  except (ValueError, TypeError) as e:
    raise app.UsageError(str(e)) from e
  family = components[0] if len(components) == 1 else problems.MixtureFamily(components,
                                                                             seed=args.seed)
  settings["horizon"] = args.horizon or family.default_horizon
  settings["spec"] = spec
  settings["objects"] = (rule, family)
  return settings
