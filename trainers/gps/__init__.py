"""Guided policy search (Li & Malik) for meta-training learned optimizers.

Each module holds one piece of the algorithm of ../shared/design/GPS.md; the
linear algebra is float64 `tf.linalg`, the Gaussians `tfp.distributions`.
"""
