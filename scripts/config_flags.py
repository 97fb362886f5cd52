"""absl flags generated from a trainer configuration's dataclass fields.

Each field of a trainer configuration (those of `trainers.registry`:
`trainers.bptt.BPTTConfig`, `trainers.pes.PESConfig`,
`trainers.gps.config.GPSConfig` and `GroupGPSConfig`) is declared once, with its help in the field's
metadata; this module makes the command line's flags from them:

* the flag's name is the field's name, its type follows the annotation
  (`int`, `float`, `bool`, `str`, `Optional[...]` of these);
* its default is the field's default, or `metadata["flag_default"]` where the
  command line's differs (`None`: the problem's default, see
  `scripts.meta_train_defaults`, or for a field the flags do not set otherwise,
  the chosen configuration's own default);
* `metadata["help"]` is its help, `metadata["choices"]` makes it an enum,
  `metadata["lower_bound"]` bounds an integer, `metadata["number"]`
  (`"positive"` or `"non_negative"`) validates a float;
* `metadata["zero_is_none"]`: the flag's 0 means the field's None (off);
* `metadata["flag"] = False`: the field is not a flag (e.g. set by `--trainer`).

A flag shared by two configurations (e.g. `num_steps`) is defined by the first.
"""

import dataclasses
import typing

from absl import flags

from . import cli

FLAGS = flags.FLAGS


def _base_type(annotation):
  """`int` for `int` and `Optional[int]`, and so on."""
  if typing.get_origin(annotation) is typing.Union:
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
    return kinds[0]
  return annotation


def flag_fields(config_class) -> list:
  """The fields of `config_class` that are command-line flags."""
  return [f for f in dataclasses.fields(config_class) if f.metadata.get("flag", True)]


def flag_names(config_class) -> tuple:
  """The flag names of `config_class`'s fields."""
  return tuple(f.name for f in flag_fields(config_class))


def _default(field):
  if "flag_default" in field.metadata:
    return field.metadata["flag_default"]
  if field.default is not dataclasses.MISSING:
    return field.default
  return field.default_factory()


def define_config_flags(config_class, flag_values=FLAGS) -> tuple:
  """Defines one flag per field of `config_class` not defined yet.

  Args:
    config_class: a dataclass whose fields carry `metadata["help"]`.
    flag_values: the `FlagValues` to define them in.

  Returns:
    The names of the flags it defined.

  Raises:
    TypeError: a field's type has no flag kind.
  """
  defined = []
  for field in flag_fields(config_class):
    if field.name in flag_values:
      continue
    kind, meta = _base_type(field.type), field.metadata
    default, help_text = _default(field), meta.get("help", field.name)
    if meta.get("zero_is_none") and default is None:
      default = 0
    if "choices" in meta:
      flags.DEFINE_enum(field.name, default, list(meta["choices"]), help_text,
                        flag_values=flag_values)
    elif kind is bool:
      flags.DEFINE_bool(field.name, default, help_text, flag_values=flag_values)
    elif kind is int:
      flags.DEFINE_integer(field.name, default, help_text, lower_bound=meta.get("lower_bound"),
                           flag_values=flag_values)
    elif kind is float:
      flags.DEFINE_float(field.name, default, help_text, flag_values=flag_values)
      if "number" in meta and flag_values is FLAGS:
        cli.register_number_validator(field.name, inclusive=meta["number"] == "non_negative")
    elif kind is str:
      flags.DEFINE_string(field.name, default, help_text, flag_values=flag_values)
    else:
      raise TypeError(f"Field {config_class.__name__}.{field.name} of type {field.type} has no "
                      "flag kind (int, float, bool, str, or Optional of these).")
    defined.append(field.name)
  return tuple(defined)


def given_values(config_class, values, exclude=()) -> dict:
  """The fields of `config_class` that flag values (`values[name]`) set, as keyword arguments.

  A `zero_is_none` field's 0 (or None) becomes None; another field's None
  (its flag unset, default None) is left out, so that the field keeps its
  default. Fields in `exclude` are left out.
  """
  kwargs = {}
  for field in flag_fields(config_class):
    if field.name in exclude:
      continue
    value = values[field.name]
    if field.metadata.get("zero_is_none"):
      value = value or None
    elif value is None:
      continue
    kwargs[field.name] = value
  return kwargs


def config_from_flags(config_class, values, **overrides):
  """A `config_class` from flag values (`values[name]`), with `overrides` taking precedence.

  See `given_values`; a field without a flag takes its default unless overridden.
  """
  return config_class(**given_values(config_class, values, exclude=overrides), **overrides)
