"""Tests of the held-out task suite (keras_l2o/suite), with a stub of its training runs."""
