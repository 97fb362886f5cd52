"""Tests of the evaluation package (keras_l2o/evaluation) and its scipy baselines."""
