"""keras_l2o: learned optimizers for TensorFlow / Keras 3.

A learned optimizer is an update rule whose formula is a small neural network,
meta-trained on a class of problems. keras_l2o makes it a Keras optimizer:

>>> import keras, keras_l2o
>>> optimizer = keras_l2o.LearnedOptimizer("lstm")     # or "mlp", "adam", ...
>>> isinstance(optimizer, keras.optimizers.Optimizer)
True
"""

from keras_l2o import distribute
from keras_l2o import native
from keras_l2o import pretrained
from keras_l2o import rules
from keras_l2o import schedules
from keras_l2o import validation
from keras_l2o.export import export_optimizer
from keras_l2o.loading import load
from keras_l2o.optimizer import LearnedOptimizer

__version__ = "0.1.0"

__all__ = ["LearnedOptimizer", "distribute", "export_optimizer", "load", "pretrained", "rules",
           "schedules", "validation"]
