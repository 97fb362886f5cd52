"""`python -m scripts.benchmark`: the command line of `scripts.benchmark.command`."""

from scripts.benchmark import command

if __name__ == "__main__":
  command.run()
