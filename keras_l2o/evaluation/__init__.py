"""Fair evaluation of optimizers on held-out problems of a family.

* `specs`: what runs (`OptimizerSpec`, `baseline`, `scipy_baseline`, `from_optimizer`);
* `runner`: loss curves of a spec on problems (`Runner`: one traced unroll, or scipy);
* `protocol`: learning rates tuned on validation problems, results on test ones (`evaluate`);
* `metrics`: sums of losses, 95% confidence intervals, speed-ups over tuned Adam;
* `report`: `results.json`, the markdown table and the plot (`write_results`).

Every public name is importable from `keras_l2o.evaluation` itself.
"""

from keras_l2o.evaluation.metrics import mean_ci95
from keras_l2o.evaluation.metrics import speedup
from keras_l2o.evaluation.metrics import steps_to_reach
from keras_l2o.evaluation.metrics import sum_loss
from keras_l2o.evaluation.metrics import summarize
from keras_l2o.evaluation.protocol import DEFAULT_GRID
from keras_l2o.evaluation.protocol import evaluate
from keras_l2o.evaluation.protocol import tune_learning_rate
from keras_l2o.evaluation.report import plot_curves
from keras_l2o.evaluation.report import report_markdown
from keras_l2o.evaluation.report import write_results
from keras_l2o.evaluation.runner import Runner
from keras_l2o.evaluation.specs import BASELINES
from keras_l2o.evaluation.specs import OptimizerSpec
from keras_l2o.evaluation.specs import SCIPY_BASELINES
from keras_l2o.evaluation.specs import baseline
from keras_l2o.evaluation.specs import check_full_batch
from keras_l2o.evaluation.specs import from_optimizer
from keras_l2o.evaluation.specs import scipy_baseline

__all__ = ["BASELINES", "DEFAULT_GRID", "OptimizerSpec", "Runner", "SCIPY_BASELINES", "baseline",
           "check_full_batch", "evaluate", "from_optimizer", "mean_ci95", "plot_curves",
           "report_markdown", "scipy_baseline", "speedup", "steps_to_reach", "sum_loss",
           "summarize", "tune_learning_rate", "write_results"]
