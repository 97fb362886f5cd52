"""`results.json`, `report.md` and the plots of a suite evaluation."""

import math
import os

from keras_l2o import schedules
from keras_l2o.suite import base
from keras_l2o.suite import metrics
from keras_l2o.suite import optimizers as optimizers_lib
from keras_l2o.suite import plots
from keras_l2o.suite import protocol as protocol_lib
from keras_l2o.suite import store as store_lib
from keras_l2o.suite import summary
from keras_l2o.suite import tuning as tuning_lib


def protocol_description(choices, test_seeds, quick=False, environment=None) -> dict:
  """The protocol as written into `results.json` and `report.md`: seeds, grids, budget,
  and the environment every run was made in (`keras_l2o.suite.environment.describe()`)."""
  tuning_runs = sum(len(c.grid) for c in choices) * len(protocol_lib.VALIDATION_SEEDS)
  return {
      "test_seeds": list(test_seeds),
      "validation_seeds": list(protocol_lib.VALIDATION_SEEDS),
      "quick": bool(quick),
      "optimizers": [c.name for c in choices],
      "grids": {c.name: [optimizers_lib.setting_key(s) for s in c.grid] for c in choices
                if c.tuned},
      "tuning_runs_per_task": tuning_runs,  # before extensions; see each row's searched rates
      "grid_rule": tuning_lib.GRID_RULE,
      "tuning_score": "final training loss (mean of the last 5% of steps' batch losses) on the "
                      "validation seeds; argmin over the searched settings, ties to the smaller "
                      "learning rate, then to the setting searched first",
      "warmup_fraction": schedules.WARMUP_FRACTION,
      "speedup_reference": optimizers_lib.REFERENCE,
      "environment": environment,
  }


def _fmt(value, digits=4):
  if value is None:
    return "-"
  if isinstance(value, float) and math.isnan(value):
    return "-"
  if isinstance(value, float) and math.isinf(value):
    return "inf"
  return f"{value:.{digits}g}"


def _setting(setting):
  return optimizers_lib.setting_key(setting).replace("learning_rate", "lr").replace(
      "weight_decay", "wd")


def _searched(row):
  """The setting's note: the rates searched, and whether the argmin is at a bound."""
  rates = row.get("searched_rates") or []
  note = f" (searched {rates[0]:g}..{rates[-1]:g}, {len(rates)} rates)" if rates else ""
  return note + (" (at a bound)" if row["at_grid_edge"] else "")


def task_markdown(task, rows) -> list:
  spec = base.get(task)
  lines = [f"### {task}", "", f"{spec.description} Horizon {spec.horizon}, batch "
           f"{spec.batch_size}; dataset `{spec.dataset}`, architecture `{spec.architecture}`.", "",
           "| optimizer | setting | final train loss (sd) | val loss | test loss | test acc | "
           "speed-up vs AdamW | diverged |", "|---|---|---|---|---|---|---|---|"]
  for name, row in rows.items():
    lines.append(
        f"| {name} | {_setting(row['setting'])}{_searched(row)} "
        f"| {_fmt(row['final_train_loss'])} "
        f"({_fmt(row['final_train_loss_std'], 2)}) | {_fmt(row['validation_loss'])} | "
        f"{_fmt(row['test_loss'])} | {_fmt(row['test_accuracy'], 3)} | {_fmt(row['speedup'], 3)} "
        f"| {row['diverged']}/{row['seeds']} |")
  return lines + [""]


def summary_markdown(across) -> list:
  baselines = [b for b in optimizers_lib.BASELINES if b in across]
  lines = ["| optimizer | " + " | ".join(f"wins vs {b}" for b in baselines) +
           " | speed-up IQM [95% CI] | diverged on |",
           "|---" * (len(baselines) + 3) + "|"]
  for name, row in across.items():
    wins = [f"{row['wins'][b]['wins']}/{row['wins'][b]['tasks']}" if b in row["wins"] else "-"
            for b in baselines]
    lines.append(f"| {name} | " + " | ".join(wins) +
                 f" | {_fmt(row['speedup_iqm'], 3)} [{_fmt(row['speedup_low'], 3)}, "
                 f"{_fmt(row['speedup_high'], 3)}] | {', '.join(row['diverged_tasks']) or '-'} |")
  return lines


def matrix_markdown(rows_by_task, column, digits=3) -> list:
  """A tasks x optimizers table of one row field (e.g. `final_train_loss`); * marks a
  task on which some seed diverged."""
  names = list(next(iter(rows_by_task.values())))
  lines = ["| task | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for task, rows in rows_by_task.items():
    cells = [_fmt(rows[n][column], digits) + ("*" if rows[n]["diverged"] else "")
             if n in rows else "-" for n in names]
    lines.append(f"| {task} | " + " | ".join(cells) + " |")
  return lines


def report_markdown(document) -> str:
  """The report of a `results.json` document."""
  protocol = document["protocol"]
  lines = ["# Held-out task suite", "",
           f"Test seeds {protocol['test_seeds']}; tuning on validation seeds "
           f"{protocol['validation_seeds']} only. Tuning score: {protocol['tuning_score']}. "
           f"Tuning runs per task before extensions: {protocol['tuning_runs_per_task']}. "
           f"Grid rule: {protocol.get('grid_rule', 'none (fixed grids)')}.", ""]
  lines += [f"- `{name}` starting grid: {', '.join(grid)}"
            for name, grid in protocol["grids"].items()]
  if protocol.get("environment"):
    lines += ["", "Every run made in one environment (a stored run made in another is rerun): " +
              ", ".join(f"{k} {v}" for k, v in sorted(protocol["environment"].items())) + "."]
  lines += ["", metrics.__doc__.split("\n\n", 1)[1].strip(), "", "## Across tasks", "",
            "Wins: tasks where the row's mean final training loss is strictly below the "
            "column's. Speed-up: IQM over tasks of the per-task mean speed-up over tuned AdamW "
            "(percentile bootstrap over tasks). Each tuned setting lists the learning rates "
            "searched on its task; (at a bound): the argmin is the smallest or largest of them, "
            "so the grid rule stopped at a bound.", ""]
  lines += summary_markdown(document["summary"])
  for title, column in (("Final training loss", "final_train_loss"), ("Test loss", "test_loss"),
                        ("Speed-up over tuned AdamW", "speedup")):
    lines += ["", f"### {title} (mean over test seeds; * some seed diverged)", ""]
    lines += matrix_markdown(document["rows"], column)
  lines += ["", "## Per task", ""]
  for task, rows in document["rows"].items():
    lines += task_markdown(task, rows)
  return "\n".join(lines)


def write_report(results, protocol, output_dir) -> dict:
  """Writes `results.json`, `report.md` and `plots/*.png`; returns their paths."""
  rows = {task: summary.task_rows(task_results) for task, task_results in results.items()}
  document = {"protocol": protocol, "rows": rows, "summary": summary.across_tasks(rows),
              "results": results}
  paths = {"results": os.path.join(output_dir, "results.json"),
           "report": os.path.join(output_dir, "report.md")}
  store_lib.write_json_atomic(paths["results"], document)
  text = report_markdown(document)
  tmp = paths["report"] + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text + "\n")
  os.replace(tmp, paths["report"])
  paths["plots"] = plots.write_plots(results, rows, os.path.join(output_dir, "plots"))
  return paths
