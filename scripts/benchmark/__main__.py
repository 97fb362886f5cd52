"""`python -m scripts.benchmark`: runs `scripts.benchmark.command`."""

from absl import flags

from .. import benchmark
from . import command

__doc__ = benchmark.__doc__  # what --help prints
flags.adopt_module_key_flags(command)  # listed by --helpshort

if __name__ == "__main__":
  command.run()
