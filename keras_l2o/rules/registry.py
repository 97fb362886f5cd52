"""The rule registry: names to rule classes, and (de)serialisation of rules."""

from keras_l2o.rules import base

_REGISTRY = {}


def register(rule_class):
  """Registers a `Rule` subclass under its `name` (usable as a decorator).

  Args:
    rule_class: a subclass of `keras_l2o.rules.Rule` with a non-empty `name`.

  Returns:
    `rule_class`, unchanged.

  Raises:
    ValueError: if the class has no name or the name is taken by another class.
  """
  if not (isinstance(rule_class, type) and issubclass(rule_class, base.Rule)):
    raise TypeError(f"register() takes a subclass of keras_l2o.rules.Rule. Received: {rule_class!r}")
  if not rule_class.name:
    raise ValueError(f"Rule class {rule_class.__name__} has no `name`.")
  existing = _REGISTRY.get(rule_class.name)
  if existing is not None and existing is not rule_class:
    raise ValueError(f"A rule named {rule_class.name!r} is already registered "
                     f"({existing.__module__}.{existing.__name__}).")
  _REGISTRY[rule_class.name] = rule_class
  return rule_class


def names() -> list:
  """The names of all registered rules, sorted."""
  return sorted(_REGISTRY)


def get(name, **config) -> base.Rule:
  """Returns the rule registered as `name`, configured by keyword arguments.

  Args:
    name: a registered rule name (see `names()`), or a `Rule` instance, which is
      returned as is (no config allowed then).
    **config: the rule's configuration, e.g. `momentum=0.5` or `preset="dm_code"`.

  Returns:
    A `Rule` instance.

  Raises:
    ValueError: for an unknown name (the message lists the valid ones) or a
      configuration key the rule does not accept.

  Example:

  >>> import keras_l2o
  >>> keras_l2o.rules.get("momentum", momentum=0.5).get_config()
  {'momentum': 0.5}
  """
  if isinstance(name, base.Rule):
    if config:
      raise ValueError(f"Config {sorted(config)} given together with a Rule instance {name!r}.")
    return name
  if not isinstance(name, str) or name not in _REGISTRY:
    raise ValueError(f"Unknown rule {name!r}. Valid rules: {', '.join(names())}.")
  rule_class = _REGISTRY[name]
  allowed = rule_class.config_names()
  unknown = sorted(set(config) - set(allowed))
  if unknown:
    raise ValueError(f"Rule {name!r} got unexpected config {unknown}. "
                     f"Allowed: {allowed if allowed else 'none'}.")
  return rule_class.from_config(config)


def serialize(rule: base.Rule) -> dict:
  """Returns `{"name": ..., "config": {...}}`, JSON-serialisable."""
  return {"name": rule.name, "config": rule.get_config()}


def deserialize(spec) -> base.Rule:
  """Inverse of `serialize`; also accepts a bare name or a `Rule`."""
  if isinstance(spec, (str, base.Rule)):
    return get(spec)
  if not isinstance(spec, dict) or "name" not in spec:
    raise ValueError(f"A serialized rule is a dict with keys 'name' and 'config'. Received: {spec!r}")
  return get(spec["name"], **spec.get("config", {}))
