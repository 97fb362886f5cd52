"""Tests of the update rules (keras_l2o/rules), with the shared rule test base and numpy oracles."""
