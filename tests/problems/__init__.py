"""Tests of the problem families (keras_l2o/problems) and the offline datasets."""
