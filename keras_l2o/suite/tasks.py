"""Imports every task module, so that importing this registers the whole suite."""

from keras_l2o.suite import tasks_image  # pylint: disable=unused-import
from keras_l2o.suite import tasks_sequence  # pylint: disable=unused-import
from keras_l2o.suite import tasks_tabular  # pylint: disable=unused-import
