"""Tests of the native CPU kernels (keras_l2o/native) against the TensorFlow ops."""
