"""A held-out suite of Keras training tasks, and the protocol that compares optimizers on it.

Each task is a function `seed -> Task` (model, data, loss, horizon, batch size)
on offline data; none is a meta-training problem (`split.overlaps()` is empty).
`evaluate_suite` tunes the baselines on validation seeds (extending a
learning-rate grid past an edge where the best rate lands, `tuning`), trains every optimizer
with `model.fit` on the test seeds and stores each finished run, so an
interrupted evaluation resumes; `write_report` writes `results.json`,
`report.md` and plots. The command line is `keras-l2o-evaluate --suite=general`.

Example:

>>> from keras_l2o import suite
>>> len(suite.names()) >= 12
True
>>> spec = suite.get("wine_mlp_deep_gelu")
>>> (spec.horizon, spec.batch_size)
(1000, 16)
"""

from keras_l2o.suite import environment
from keras_l2o.suite import schedule_free
from keras_l2o.suite import tuning
from keras_l2o.suite import tasks as _tasks  # pylint: disable=unused-import  (registers the tasks)
from keras_l2o.suite.base import ARCHITECTURES
from keras_l2o.suite.base import get
from keras_l2o.suite.base import names
from keras_l2o.suite.base import register
from keras_l2o.suite.base import Task
from keras_l2o.suite.base import TaskSpec
from keras_l2o.suite.metrics import diverged
from keras_l2o.suite.metrics import final_loss
from keras_l2o.suite.metrics import iqm
from keras_l2o.suite.metrics import iqm_interval
from keras_l2o.suite.metrics import speedup
from keras_l2o.suite.metrics import steps_to_reach
from keras_l2o.suite.optimizers import BASELINES
from keras_l2o.suite.optimizers import baseline
from keras_l2o.suite.optimizers import Choice
from keras_l2o.suite.optimizers import learned
from keras_l2o.suite.protocol import check_seeds
from keras_l2o.suite.protocol import count_runs
from keras_l2o.suite.protocol import evaluate_suite
from keras_l2o.suite.protocol import evaluate_task
from keras_l2o.suite.protocol import MissingRun
from keras_l2o.suite.protocol import QUICK_TEST_SEEDS
from keras_l2o.suite.protocol import stored_only
from keras_l2o.suite.protocol import TEST_SEEDS
from keras_l2o.suite.protocol import tune
from keras_l2o.suite.protocol import VALIDATION_SEEDS
from keras_l2o.suite.report import protocol_description
from keras_l2o.suite.report import report_markdown
from keras_l2o.suite.report import write_report
from keras_l2o.suite.split import overlaps
from keras_l2o.suite.split import training_uses
from keras_l2o.suite.store import RunStore
from keras_l2o.suite.training import run

__all__ = ["ARCHITECTURES", "BASELINES", "Choice", "MissingRun", "QUICK_TEST_SEEDS", "RunStore",
           "TEST_SEEDS", "Task", "TaskSpec", "VALIDATION_SEEDS", "baseline", "check_seeds",
           "count_runs", "diverged", "environment", "evaluate_suite", "evaluate_task",
           "final_loss", "get", "iqm", "iqm_interval", "learned", "names", "overlaps",
           "protocol_description", "register", "report_markdown", "run", "schedule_free",
           "speedup", "steps_to_reach", "stored_only", "training_uses", "tune", "tuning",
           "write_report"]
