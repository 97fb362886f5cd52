"""Newton–Schulz orthogonalisation of matrices (the iteration Muon uses).

For a matrix X with singular value decomposition U S V^T, the quintic
Newton–Schulz iteration drives every singular value towards 1 without ever
computing the decomposition, so it approximates the "orthogonal part" U V^T of
X with matrix products only. Each iteration is

    A = X X^T,    X <- a X + (b A + c A^2) X

with (a, b, c) = (3.4445, -4.7750, 2.0315) (Jordan et al., "Muon", 2024). These
coefficients trade exactness for speed: after 5 iterations the singular values
lie roughly in [0.7, 1.2] rather than at 1 exactly, which is all an optimizer's
direction needs.

The iteration runs on the "wide" orientation (rows <= columns) so that A is
the smaller Gram matrix, after dividing X by its Frobenius norm (so every
singular value starts in (0, 1]). Leading axes are batch axes: a conv kernel
[h, w, in, out] is orthogonalised per spatial tap, as [in, out] matrices.
"""

import tensorflow as tf

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalise(x, num_steps: int = 5, epsilon: float = 1e-7):
  """Approximately replaces every singular value of the last two axes of `x` by 1.

  Args:
    x: a tensor of rank >= 2; the last two axes are the matrix, leading axes
      are a batch.
    num_steps: Newton–Schulz iterations (5 in Muon and Celo2).
    epsilon: added to the Frobenius norm before dividing by it (a zero matrix
      stays zero).

  Returns:
    A tensor shaped like `x` whose matrices have singular values near 1 and the
    singular vectors of `x`.

  Raises:
    ValueError: if `x` has rank below 2.

  Example:

  >>> import numpy as np, tensorflow as tf
  >>> x = tf.constant(np.random.default_rng(0).normal(size=(8, 20)), tf.float32)
  >>> s = np.linalg.svd(orthogonalise(x).numpy(), compute_uv=False)
  >>> bool(s.min() > 0.6 and s.max() < 1.25)
  True
  """
  if x.shape.rank is not None and x.shape.rank < 2:
    raise ValueError(f"orthogonalise() needs a tensor of rank >= 2. Received shape {x.shape}.")
  a, b, c = (tf.constant(v, x.dtype) for v in NS_COEFFICIENTS)
  tall = x.shape[-2] is not None and x.shape[-1] is not None and x.shape[-2] > x.shape[-1]
  if tall:
    x = tf.linalg.matrix_transpose(x)
  norm = tf.sqrt(tf.reduce_sum(tf.square(x), axis=[-2, -1], keepdims=True))
  x = x / (norm + tf.constant(epsilon, x.dtype))
  for _ in range(num_steps):
    gram = tf.matmul(x, x, transpose_b=True)
    poly = b * gram + c * tf.matmul(gram, gram)
    x = a * x + tf.matmul(poly, x)
  if tall:
    x = tf.linalg.matrix_transpose(x)
  return x
