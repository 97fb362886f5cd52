"""Tests of savedModel export, keras_l2o.load and the shipped pretrained optimizers."""
