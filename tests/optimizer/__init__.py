"""Tests of LearnedOptimizer as a Keras optimizer: contract, fit, saving, strategies, bad input."""
