"""The suite's protocol: tune the baselines on validation seeds, run everyone on test seeds.

For each task, in order:

1. each tuned baseline runs every setting of its grid on the task's validation
   seed(s) (`VALIDATION_SEEDS`, disjoint from the test seeds); its setting is
   the grid argmin of the final training loss (mean over validation seeds;
   a diverged run scores inf; ties go to the first setting of the grid);
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


def tune(spec, choice, store, run_fn, validation_seeds=VALIDATION_SEEDS, on_run=None):
  """Runs `choice`'s grid on the validation seeds; returns `(best_setting, scores)`.

  `scores` maps each setting's key to its mean final training loss.
  """
  scores, values = {}, []
  for setting in choice.grid:
    finals = []
    for seed in validation_seeds:
      finals.append(metrics.final_loss(_stored_run(store, spec, choice, seed, setting,
                                                   run_fn)["curve"]))
      if on_run:
        on_run()
    values.append(sum(finals) / len(finals))
    scores[optimizers_lib.setting_key(setting)] = values[-1]
  best = min(range(len(values)), key=lambda i: (values[i], i))  # inf (diverged) sorts last
  return choice.grid[best], scores


def evaluate_task(spec, choices, store, test_seeds, run_fn=None,
                  validation_seeds=VALIDATION_SEEDS, on_run=None) -> dict:
  """Tunes and runs every optimizer on one task; returns `{optimizer: entry}`.

  Each entry holds `setting` (the chosen or fixed setting), `tuning` (setting key
  -> validation score, tuned baselines only), `at_grid_edge` (True if the tuned
  learning rate is the smallest or largest of the grid: the grid may be too
  narrow) and `runs` (one record per test seed, in `test_seeds` order).
  """
  check_seeds(test_seeds, validation_seeds)
  run_fn = run_fn or training.run
  results = {}
  for choice in choices:
    entry = {"setting": None, "tuning": {}, "at_grid_edge": False}
    if choice.tuned:
      entry["setting"], entry["tuning"] = tune(spec, choice, store, run_fn, validation_seeds,
                                               on_run)
      rates = [setting["learning_rate"] for setting in choice.grid]
      entry["at_grid_edge"] = entry["setting"]["learning_rate"] in (min(rates), max(rates))
      logging.info("%s on %s: tuned setting %s", choice.name, spec.name, entry["setting"])
    entry["runs"] = []
    for seed in test_seeds:
      entry["runs"].append(_stored_run(store, spec, choice, seed, entry["setting"], run_fn))
      if on_run:
        on_run()
    results[choice.name] = entry
  return results


def count_runs(task_names, choices, test_seeds, validation_seeds=VALIDATION_SEEDS) -> int:
  """Runs a full evaluation makes (the progress bar's target)."""
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
    progress: an object with `add(1)` (e.g. `keras.utils.Progbar`), or None.
    validation_seeds: the tuning seeds.
  """
  on_run = (lambda: progress.add(1)) if progress is not None else None
  results = {}
  for name in task_names:
    try:
      results[name] = evaluate_task(base.get(name), choices, store, test_seeds, run_fn,
                                    validation_seeds, on_run)
    except MissingRun as e:
      logging.warning("Left out of the report: %s", e)
  return results
