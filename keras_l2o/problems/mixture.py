"""A mixture of problem families: meta-train one rule across several kinds of problem."""

from keras_l2o.problems import base


class MixtureFamily(base.ProblemFamily):
  """Cycles through component families: problem `i` of a split is problem `i // K`
  of component `i % K` (K components), so every split stays disjoint.

  Problems of different components have different tensors and parameter
  shapes; trainers and evaluation look up the component of each problem with
  `component_of(index)` and run it with that component's functions.

  Args:
    components: the component `ProblemFamily`s (at least one).
    seed: recorded for the config; the components keep their own seeds.

  Example:

  >>> from keras_l2o import problems
  >>> mix = problems.MixtureFamily([problems.get("quadratic"), problems.get("digits_mlp")])
  >>> [mix.sample("train", i).family_name for i in range(3)]
  ['quadratic', 'digits_mlp', 'quadratic']
  """

  name = "mixture"

  def __init__(self, components, seed: int = 0):
    components = list(components)
    if not components or not all(isinstance(c, base.ProblemFamily) for c in components):
      raise ValueError("MixtureFamily needs a non-empty list of ProblemFamily components. "
                       f"Received: {components!r}")
    super().__init__(seed, components=[{"name": c.name, "config": c.get_config()}
                                       for c in components])
    self.components = components
    self.default_horizon = max(c.default_horizon for c in components)

  def component_of(self, index: int) -> int:
    """Which component problem `index` (of any split) comes from."""
    return int(index) % len(self.components)

  def sample(self, split, index):
    component = self.components[self.component_of(index)]
    return component.sample(split, int(index) // len(self.components))

  def _sample_tensors(self, split, rng, seed):
    raise NotImplementedError("MixtureFamily.sample delegates to its components.")

  def _unsupported(self, *args):
    raise TypeError("A MixtureFamily has no functions of its own: run each problem with "
                    "`family.components[family.component_of(index)]`.")

  init_params = batch = losses = _unsupported
