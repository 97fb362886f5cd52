"""The suite's protocol: tune the baselines on validation seeds, run everyone on test seeds.

For each task, in order:

1. each tuned baseline runs every setting of its grid on the task's validation
   seed(s) (`VALIDATION_SEEDS`, disjoint from the test seeds); its setting is
   the argmin of the final training loss (mean over validation seeds; a
   diverged run scores inf), the grid extended past an edge where the argmin
   lands (`keras_l2o.suite.tuning`);
2. every optimizer (tuned baselines at their chosen setting, untuned ones as
   they are) runs on each test seed.

Every run goes through a `RunStore`: a finished run is read back, not rerun.
The function that trains is a parameter (`run_fn(spec, seed, make_optimizer)`),
so that tests can run the protocol on a stub.
"""

from absl import logging

from keras_l2o.suite import base
from keras_l2o.suite import metrics
from keras_l2o.suite import optimizers as optimizers_lib
from keras_l2o.suite import training
from keras_l2o.suite import tuning

VALIDATION_SEEDS = (10_000,)  # tuning seeds; test seeds must stay below this
TEST_SEEDS = (0, 1, 2)
QUICK_TEST_SEEDS = (0,)


class MissingRun(LookupError):
  """Raised by `stored_only` for a run that is not in the store."""


def stored_only(spec, seed, make):
  """A `run_fn` that trains nothing: every run must already be stored."""
  del make
  raise MissingRun(f"Task {spec.name!r}, seed {seed}: a run is not stored yet.")


def check_seeds(test_seeds, validation_seeds=VALIDATION_SEEDS):
  """Raises ValueError if a test seed is also a validation (tuning) seed."""
  shared = sorted(set(test_seeds) & set(validation_seeds))
  if shared:
    raise ValueError(f"Test seeds {sorted(test_seeds)} overlap the validation seeds "
                     f"{sorted(validation_seeds)} used for tuning: {shared}.")


def _stored_run(store, spec, choice, seed, setting, run_fn):
  key = optimizers_lib.setting_key(setting)
  record = store.get(spec.name, choice.name, seed, key)
  if record is None:
    record = run_fn(spec, seed, lambda horizon: choice.make(horizon, **(setting or {})))
    record["setting"] = dict(setting or {})
    store.put(spec.name, choice.name, seed, key, record)
  return record


def tune(spec, choice, store, run_fn, validation_seeds=VALIDATION_SEEDS, on_run=None,
         on_more=None) -> dict:
  """Tunes `choice` on the validation seeds by `keras_l2o.suite.tuning.GRID_RULE`.

  Returns `keras_l2o.suite.tuning.tune`'s dict (`setting`, `scores`,
  `searched_rates`, `at_grid_edge`). `on_run()` is called after each run,
  `on_more(n)` before the rule adds `n` runs.
  """

  def score(setting):
    finals = []
    for seed in validation_seeds:
      finals.append(metrics.final_loss(_stored_run(store, spec, choice, seed, setting,
                                                   run_fn)["curve"]))
      if on_run:
        on_run()
    return finals

  more = (lambda n: on_more(n * len(validation_seeds))) if on_more else None
  return tuning.tune(spec, choice, score, more)


def evaluate_task(spec, choices, store, test_seeds, run_fn=None,
                  validation_seeds=VALIDATION_SEEDS, on_run=None, on_more=None) -> dict:
  """Tunes and runs every optimizer on one task; returns `{optimizer: entry}`.

  Each entry holds `setting` (the chosen or fixed setting), `tuning` (setting key
  -> validation score, tuned baselines only), `searched_rates` (the learning
  rates tuned over, after the grid's extension), `at_grid_edge` (True if the
  tuned rate is still the smallest or largest searched: the extension stopped at
  a bound) and `runs` (one record per test seed, in `test_seeds` order).
  """
  check_seeds(test_seeds, validation_seeds)
  run_fn = run_fn or training.run
  results = {}
  for choice in choices:
    entry = {"setting": None, "tuning": {}, "searched_rates": [], "at_grid_edge": False}
    if choice.tuned:
      tuned = tune(spec, choice, store, run_fn, validation_seeds, on_run, on_more)
      entry.update(setting=tuned["setting"], tuning=tuned["scores"],
                   searched_rates=tuned["searched_rates"], at_grid_edge=tuned["at_grid_edge"])
      logging.info("%s on %s: tuned setting %s (rates searched: %s)", choice.name, spec.name,
                   entry["setting"], entry["searched_rates"])
    entry["runs"] = []
    for seed in test_seeds:
      entry["runs"].append(_stored_run(store, spec, choice, seed, entry["setting"], run_fn))
      if on_run:
        on_run()
    results[choice.name] = entry
  return results


def count_runs(task_names, choices, test_seeds, validation_seeds=VALIDATION_SEEDS) -> int:
  """Runs a full evaluation makes before any grid is extended (the progress bar's first
  target; each extension adds its runs to it)."""
  per_task = sum(len(c.grid) * len(validation_seeds) + len(test_seeds) for c in choices)
  return per_task * len(task_names)


def evaluate_suite(task_names, choices, store, test_seeds, run_fn=None, progress=None,
                   validation_seeds=VALIDATION_SEEDS) -> dict:
  """`evaluate_task` on every task; returns `{task: {optimizer: entry}}`.

  Args:
    task_names: registered suite task names.
    choices: `keras_l2o.suite.optimizers.Choice`s.
    store: a `RunStore` (finished runs are reused).
    test_seeds: seeds of the reported runs.
    run_fn: trains one run (default `keras_l2o.suite.training.run`); with
      `stored_only`, tasks with a run not yet stored are left out (a report of
      a stopped evaluation).
    progress: an object with `add(1)` and a `target` (e.g. `keras.utils.Progbar`), or
      None; the target grows by the runs each grid extension adds.
    validation_seeds: the tuning seeds.
  """
  on_run = on_more = None
  if progress is not None:
    on_run = lambda: progress.add(1)
    on_more = lambda n: setattr(progress, "target", progress.target + n)
  results = {}
  for name in task_names:
    try:
      results[name] = evaluate_task(base.get(name), choices, store, test_seeds, run_fn,
                                    validation_seeds, on_run, on_more)
    except MissingRun as e:
      logging.warning("Left out of the report: %s", e)
  return results
