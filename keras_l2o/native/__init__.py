"""Native CPU kernels: optional, faster forms of rule steps that TensorFlow ops compute slowly.

* `build`: compiles them against the installed TensorFlow (`make setup` does).
* `library`: loads a built kernel once per process.
* `lstm_rule`: the lstm rule's step as one kernel (`supports`, `native_delta`).
* `general_rule`: the general rule's per-coordinate part of a matrix step as
  one kernel (`supports`, `native_delta`).
"""

from keras_l2o.native import build
from keras_l2o.native import general_rule
from keras_l2o.native import library
from keras_l2o.native import lstm_rule
