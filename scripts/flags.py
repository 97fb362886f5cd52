"""Flag definitions and flag-value parsing of the absl scripts.

Only the scripts (`scripts.benchmark`, `scripts.demo`) call the `define_*`
functions; library code never defines or parses flags. The definitions are
idempotent (a flag already defined is left alone), so both scripts can be
imported into one process (as `tests/scripts/test_scripts.py` does) and a module run
with `python -m` that is imported again does not raise `DuplicateFlagError`.
"""

import re

from absl import flags

import keras_l2o

FLAGS = flags.FLAGS

# Default output directories; `--output_dir` is shared, so its flag default is
# None and every script resolves its own.
BENCHMARK_OUTPUT_DIR = "runs/benchmark"
DEMO_OUTPUT_DIR = "demo_output"

# Sizes of the benchmark MLPs: a number with an optional k (1e3) or M (1e6).
NAMED_SIZES = ("10k", "100k", "1M", "10M")
MIN_SIZE, MAX_SIZE = 1_000, 10_000_000
_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


# --------------------------------------------------------------- parsing --
def parse_size(text: str) -> int:
  """`"10k"` -> 10000, `"1M"` -> 1000000, `"50000"` -> 50000.

  Raises:
    ValueError: with a message naming the accepted forms.
  """
  match = _SIZE_RE.match(text.strip())
  if not match:
    raise ValueError(f"Unknown size {text!r}. Use a parameter count such as "
                     f"{', '.join(NAMED_SIZES)} (a number with an optional k or M suffix).")
  number, suffix = float(match.group(1)), match.group(2).lower()
  value = int(round(number * {"": 1, "k": 1_000, "m": 1_000_000}[suffix]))
  if not MIN_SIZE <= value <= MAX_SIZE:
    raise ValueError(f"Size {text!r} = {value:,} parameters is out of range "
                     f"[{MIN_SIZE:,}, {MAX_SIZE:,}].")
  return value


def parse_sizes(text: str) -> list:
  """`"10k,100k"` -> `[("10k", 10000), ("100k", 100000)]` (order kept, no duplicates)."""
  labels = [s.strip() for s in text.split(",") if s.strip()]
  if not labels:
    raise ValueError("--sizes is empty. Give a comma-separated list such as 10k,100k,1M.")
  result = []
  for label in labels:
    value = parse_size(label)
    if value in [v for _, v in result]:
      raise ValueError(f"Size {label!r} is given twice in --sizes={text!r}.")
    result.append((label, value))
  return result


def benchmark_rules() -> list:
  """Registered rules that `model.fit` can run: all but those reading the objective value."""
  return [n for n in keras_l2o.rules.names() if not keras_l2o.rules.get(n).uses_loss]


def parse_rules(text: str) -> list:
  """`"all"` or `"lstm,mlp"` -> a list of benchmarkable rule names (order kept)."""
  valid = benchmark_rules()
  if text.strip().lower() == "all":
    return list(valid)
  names = [s.strip() for s in text.split(",") if s.strip()]
  if not names:
    raise ValueError(f"--rules is empty. Valid rules: {', '.join(valid)} (or 'all').")
  unknown = [n for n in names if n not in valid]
  if unknown:
    raise ValueError(f"Unknown rule(s) {', '.join(map(repr, unknown))} in --rules. "
                     f"Valid rules: {', '.join(valid)} (or 'all').")
  if len(set(names)) != len(names):
    raise ValueError(f"A rule is given twice in --rules={text!r}.")
  return names


def _validator(parse):
  """Turns a parser into an absl validator that reports the parser's message."""

  def check(value):
    try:
      parse(value)
    except ValueError as e:
      raise flags.ValidationError(str(e)) from None
    return True

  return check


# ----------------------------------------------------------- definitions --
def _define(define_fn, name, *args, **kwargs):
  if name not in FLAGS:
    define_fn(name, *args, **kwargs)
    return True
  return False


def define_common_flags():
  """Flags both scripts share: --output_dir and --seed."""
  _define(flags.DEFINE_string, "output_dir", None,
          f"Directory for the outputs (default: {BENCHMARK_OUTPUT_DIR}/ for the benchmark, "
          f"{DEMO_OUTPUT_DIR}/ for the demo). Created if missing.")
  _define(flags.DEFINE_integer, "seed", 0, "Seed of the data, the model initialisation and "
          "the train/test split.", lower_bound=0)


BENCHMARK_FLAGS = ("sizes", "rules", "steps", "warmup", "batch_size", "jit", "quick", "memory",
                   "update_params", "update_repeats", "max_seconds", "output_dir", "output_json",
                   "seed", "conv", "flops", "bptt_steps", "bptt_warmup", "max_state_gb")


def define_benchmark_flags():
  """Flags of `scripts.benchmark` (keras-l2o-benchmark)."""
  define_common_flags()
  if _define(flags.DEFINE_string, "sizes", "10k,100k,1M,10M",
             "Comma-separated approximate parameter counts of the benchmark MLPs "
             "(64-h-h-10 with h chosen to match): e.g. 10k,100k,1M,10M."):
    flags.register_validator("sizes", _validator(parse_sizes))
  if _define(flags.DEFINE_string, "rules", "all",
             f"Comma-separated rules to benchmark against keras.optimizers.Adam, or 'all' "
             f"({', '.join(benchmark_rules())})."):
    flags.register_validator("rules", _validator(parse_rules))
  _define(flags.DEFINE_integer, "steps", 300, "Measured model.fit steps per configuration.",
          lower_bound=1)
  _define(flags.DEFINE_integer, "warmup", 20,
          "Steps run (and discarded) before the measured ones; the first one traces.",
          lower_bound=0)
  _define(flags.DEFINE_integer, "batch_size", 128, "Batch size of the synthetic data.",
          lower_bound=1)
  _define(flags.DEFINE_boolean, "jit", True,
          "Also measure with jit_compile=True (XLA), in addition to jit_compile=False.")
  _define(flags.DEFINE_boolean, "conv", True, "Also time model.fit of a small conv net.")
  _define(flags.DEFINE_boolean, "flops", True,
          "Count every rule's flops per coordinate, measure the matmul rate, report flop bounds.")
  _define(flags.DEFINE_integer, "bptt_steps", 100,
          "Meta-steps timed per learned rule for BPTT throughput on quadratics (0: skip).",
          lower_bound=0)
  _define(flags.DEFINE_integer, "bptt_warmup", 5,
          "Meta-steps run (and not timed) before the BPTT throughput measurement.",
          lower_bound=1)
  _define(flags.DEFINE_float, "max_state_gb", 2.0,
          "Skip fit configurations whose optimizer state would exceed this many GB.",
          lower_bound=0.0)
  _define(flags.DEFINE_boolean, "quick", False,
          "Tiny settings for tests and smoke runs: unless given explicitly, --sizes=10k "
          "--steps=10 --warmup=2 --update_params=10k --update_repeats=5 --nomemory --nojit "
          "--noconv --noflops --bptt_steps=0 --max_seconds=0.")
  _define(flags.DEFINE_boolean, "memory", True,
          "Run every jit-off (optimizer, size >= 1M) in its own subprocess and report its "
          "peak RSS (ru_maxrss is process-wide and never decreases, so it needs a fresh process). "
          "--nomemory runs everything in this process and skips memory.")
  if _define(flags.DEFINE_string, "update_params", "1M",
             "Size of the single variable on which optimizer.apply alone is timed."):
    flags.register_validator("update_params", _validator(parse_size))
  _define(flags.DEFINE_integer, "update_repeats", 30,
          "Timed calls of optimizer.apply (after 3 warm-up calls); the median is reported.",
          lower_bound=1)
  _define(flags.DEFINE_float, "max_seconds", 15.0,
          "If > 0, stop measuring a configuration after this many seconds of fit (with at "
          "least 5 measured steps); the number of measured steps is reported. 0: no limit.",
          lower_bound=0.0)
  _define(flags.DEFINE_string, "output_json", "benchmark_results.json",
          "JSON results file; a relative path is taken inside --output_dir.")
  # Internal: how the parent process hands one configuration to a subprocess.
  _define(flags.DEFINE_string, "child_spec", None,
          "(internal) JSON spec of a single configuration, run in this subprocess.")
  _define(flags.DEFINE_string, "child_output", None,
          "(internal) Where the subprocess writes its JSON result.")


DEMO_FLAGS = ("epochs", "output_dir", "seed", "meta_steps", "num_problems")


def define_demo_flags():
  """Flags of `scripts.demo` (`make demo`)."""
  define_common_flags()
  _define(flags.DEFINE_integer, "epochs", 15, "Digits training epochs per optimizer.",
          lower_bound=1)
  _define(flags.DEFINE_integer, "meta_steps", 1000, "Meta-training steps of the demo's lstm "
          "optimizer on quadratics.", lower_bound=1)
  _define(flags.DEFINE_integer, "num_problems", 100, "Held-out quadratics it is evaluated on.",
          lower_bound=2)


def explicit_flags(names) -> list:
  """The `--name=value` strings of the flags among `names` given on the command line."""
  return [FLAGS[name].serialize() for name in names if name in FLAGS and FLAGS[name].present]
