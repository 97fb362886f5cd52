"""Update rules: pure update formulas, learned and hand-designed.

`keras_l2o.rules.get(name, **config)` returns a rule; `names()` lists them.
"""

from keras_l2o.rules.base import declare_state
from keras_l2o.rules.base import EmptyState
from keras_l2o.rules.base import Rule
from keras_l2o.rules.coordinate_policy import CoordinatePolicyRule
from keras_l2o.rules.factored_mlp import FactoredMLPRule
from keras_l2o.rules.general import GeneralRule
from keras_l2o.rules.gps_general import GPSGeneralRule
from keras_l2o.rules.hand_designed import Adagrad
from keras_l2o.rules.hand_designed import Adam
from keras_l2o.rules.hand_designed import Momentum
from keras_l2o.rules.hand_designed import NAG
from keras_l2o.rules.hand_designed import RMSprop
from keras_l2o.rules.hand_designed import SGD
from keras_l2o.rules.learned_lr import LearnedLRRule
from keras_l2o.rules.lstm import LSTMRule
from keras_l2o.rules.mlp import MLPRule
from keras_l2o.rules.policy import PolicyRule
from keras_l2o.rules.registry import deserialize
from keras_l2o.rules.registry import get
from keras_l2o.rules.registry import names
from keras_l2o.rules.registry import register
from keras_l2o.rules.registry import serialize

for _rule_class in (SGD, Momentum, NAG, RMSprop, Adam, Adagrad, LSTMRule, MLPRule, FactoredMLPRule,
                    PolicyRule, CoordinatePolicyRule, GeneralRule, GPSGeneralRule, LearnedLRRule):
  register(_rule_class)
del _rule_class

HAND_DESIGNED = ("sgd", "momentum", "nag", "rmsprop", "adam", "adagrad")
