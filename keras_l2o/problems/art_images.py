"""Content and style images of the `neural_art` problems, all available offline.

Content images:

* `"photos"`: square crops of scikit-learn's two bundled 427x640 photos
  (`sklearn.datasets.load_sample_images`), resized to the problem size. Each
  photo is cut into 128x128 tiles (3 x 5 of them), and the tiles are dealt to
  train (60%), validation (20%) and test (20%) by a permutation drawn from the
  family seed, so crops of different splits never share a pixel. A crop lies
  inside one tile of its split, with a side drawn in 96-128 px for every split.
* `"digits"`: scikit-learn's 8x8 digits, upscaled bilinearly and coloured with
  a random foreground and background colour; the digits are split 60/20/20
  into disjoint train / validation / test sets with the family seed.
* the user's own image files (`content_paths`), cut into tiles like the photos.

Style images are textures generated from a style id (the kind is
`TEXTURES[style_id % 6]`, its parameters come from `(family seed, style id)`):
stripes, checkers, dots, plaid, waves and fractal value noise, drawn in pixel
units so that one style has the same local statistics at 64 and at 128 px. The
user may pass style image files instead (`style_paths`).

Everything returns float32 `[size, size, 3]` arrays with values in [0, 1].
"""

import functools

import numpy as np
import tensorflow as tf

SPLITS = ("train", "validation", "test")
# Side of the tiles content images are cut into, and of a crop inside one, in source pixels.
TILE = 128
CROP_SIDES = (96, 128)
# Fractions of the tiles given to the train and validation splits (the rest: test).
TILE_FRACTIONS = (0.6, 0.2)
CONTENT_SOURCES = ("photos", "digits")
TEXTURES = ("stripes", "checkers", "dots", "plaid", "waves", "noise")
# Mixed into seeds so that style textures and digit splits get their own streams.
STYLE_SALT = 1_000_003
DIGITS_SALT = 1_000_033
TILES_SALT = 1_000_037


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """`image` `[h, w, 3]` resized to `[size, size, 3]` (bilinear, antialiased), float32."""
  out = tf.image.resize(tf.constant(image, tf.float32), [size, size], method="bilinear",
                        antialias=True)
  return np.clip(out.numpy(), 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=None)
def sample_photos() -> tuple:
  """scikit-learn's two bundled photos as float32 `[427, 640, 3]` arrays in [0, 1]."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  return tuple(np.asarray(im, np.float32) / 255.0 for im in datasets.load_sample_images().images)


@functools.lru_cache(maxsize=None)
def load_image_file(path: str) -> np.ndarray:
  """An image file (any format Pillow reads) as float32 `[h, w, 3]` in [0, 1]."""
  import keras  # pylint: disable=g-import-not-at-top
  image = keras.utils.load_img(path, color_mode="rgb")
  return np.asarray(keras.utils.img_to_array(image), np.float32) / 255.0


def split_tiles(shape, family_seed: int, split: str) -> list:
  """The `(top, left)` corners of the `TILE`-pixel tiles of an image that belong to `split`.

  Args:
    shape: the image's `(height, width, ...)`; needs at least 3 whole tiles.
    family_seed: the permutation of the tiles is drawn from it.
    split: `"train"`, `"validation"` or `"test"`.

  Returns:
    A non-empty list of corners; the three splits' lists are disjoint.

  Raises:
    ValueError: if the image holds fewer than 3 tiles.
  """
  rows, cols = shape[0] // TILE, shape[1] // TILE
  if rows * cols < 3:
    raise ValueError(f"A content image must hold at least 3 tiles of {TILE}x{TILE} pixels (one "
                     f"per split). Received an image of shape {tuple(shape)}.")
  corners = [(r * TILE, c * TILE) for r in range(rows) for c in range(cols)]
  order = np.random.default_rng([int(family_seed), TILES_SALT]).permutation(len(corners))
  cut1 = max(1, int(round(TILE_FRACTIONS[0] * len(corners))))
  cut2 = min(len(corners) - 1, max(cut1 + 1, int(round(sum(TILE_FRACTIONS) * len(corners)))))
  index = {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}[split]
  return [corners[i] for i in index]


def tile_crop(image, family_seed, split, rng, size) -> np.ndarray:
  """A random square crop inside one of `split`'s tiles of `image`, resized to `size`.

  Args:
    image: `[h, w, 3]` floats.
    family_seed: the family seed (deals the tiles to the splits).
    split: `"train"`, `"validation"` or `"test"`.
    rng: the problem's generator.
    size: output side in pixels.

  Returns:
    float32 `[size, size, 3]`.
  """
  tiles = split_tiles(image.shape, family_seed, split)
  top, left = tiles[int(rng.integers(len(tiles)))]
  side = int(rng.integers(CROP_SIDES[0], CROP_SIDES[1] + 1))
  y, x = top + int(rng.integers(0, TILE - side + 1)), left + int(rng.integers(0, TILE - side + 1))
  return resize(image[y:y + side, x:x + side], size)


@functools.lru_cache(maxsize=None)
def _digit_images() -> np.ndarray:
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  return datasets.load_digits().images.astype(np.float32) / 16.0


def digit_indices(family_seed: int) -> dict:
  """Disjoint indices of scikit-learn's 1,797 digits per split (60/20/20), from the family seed."""
  order = np.random.default_rng([int(family_seed), DIGITS_SALT]).permutation(len(_digit_images()))
  cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
  return {"train": order[:cut1], "validation": order[cut1:cut2], "test": order[cut2:]}


def digit_image(family_seed: int, split: str, rng: np.random.Generator, size: int) -> np.ndarray:
  """A digit of `split` upscaled to `size`, in a random foreground / background colour."""
  indices = digit_indices(family_seed)[split]
  digit = _digit_images()[indices[int(rng.integers(len(indices)))]]
  colors = rng.uniform(0.0, 1.0, (2, 3)).astype(np.float32)
  mask = resize(np.repeat(digit[:, :, None], 3, axis=2), size)
  return (colors[0] * (1.0 - mask) + colors[1] * mask).astype(np.float32)


def content_image(family_seed, split, rng, size, sources=CONTENT_SOURCES, paths=None):
  """The content image of one problem: a source drawn uniformly, then a crop of it.

  Args:
    family_seed: the family seed (splits the digits).
    split: the problem's split.
    rng: the problem's generator.
    size: output side in pixels.
    sources: names from `CONTENT_SOURCES` (ignored when `paths` is given).
    paths: the user's image files, cut into split tiles like the photos.

  Returns:
    float32 `[size, size, 3]`.
  """
  if paths:
    image = load_image_file(paths[int(rng.integers(len(paths)))])
    return tile_crop(image, family_seed, split, rng, size)
  source = sources[int(rng.integers(len(sources)))]
  if source == "digits":
    return digit_image(family_seed, split, rng, size)
  photos = sample_photos()
  return tile_crop(photos[int(rng.integers(len(photos)))], family_seed, split, rng, size)


# ------------------------------------------------------------- textures --
def _grid(size, angle):
  y, x = np.mgrid[0:size, 0:size].astype(np.float64)
  return x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)


def _soft(value, sharpness):
  return 0.5 + 0.5 * np.tanh(sharpness * value)


def _stripes(rng, size):
  u, _ = _grid(size, rng.uniform(0, np.pi))
  wave = np.sin(2 * np.pi * u / rng.uniform(5, 16) + rng.uniform(0, 2 * np.pi))
  return [_soft(wave, rng.uniform(1, 8))], 2


def _checkers(rng, size):
  u, v = _grid(size, rng.uniform(0, np.pi / 2))
  cell = rng.uniform(4, 12)
  return [((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float64)], 2


def _dots(rng, size):
  u, v = _grid(size, rng.uniform(0, np.pi / 2))
  spacing = rng.uniform(6, 14)
  du, dv = u % spacing - spacing / 2, v % spacing - spacing / 2
  radius = rng.uniform(0.2, 0.45) * spacing
  return [_soft(radius - np.sqrt(du ** 2 + dv ** 2), 2.0)], 2


def _plaid(rng, size):
  angle = rng.uniform(0, np.pi / 2)
  masks = []
  for u in _grid(size, angle):
    masks.append(_soft(np.sin(2 * np.pi * u / rng.uniform(6, 20)), rng.uniform(1, 6)))
  return masks, 3


def _waves(rng, size):
  channels = []
  for _ in range(3):
    u, v = _grid(size, rng.uniform(0, np.pi))
    warp = rng.uniform(0, 3) * np.sin(2 * np.pi * v / rng.uniform(10, 30))
    channels.append(0.5 + 0.5 * np.sin(2 * np.pi * u / rng.uniform(8, 24) + warp))
  return np.stack(channels, axis=-1)


def value_noise(rng, size, cell):
  """Smooth random noise with features of `cell` pixels (bilinear with smoothstep)."""
  n = size // int(cell) + 2
  grid = rng.standard_normal((n, n))
  y, x = np.mgrid[0:size, 0:size].astype(np.float64) / cell
  ix, iy = np.floor(x).astype(int), np.floor(y).astype(int)
  fx, fy = x - ix, y - iy
  sx, sy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
  top = grid[iy, ix] * (1 - sx) + grid[iy, ix + 1] * sx
  bottom = grid[iy + 1, ix] * (1 - sx) + grid[iy + 1, ix + 1] * sx
  return top * (1 - sy) + bottom * sy


def _noise(rng, size):
  total = sum(0.5 ** k * value_noise(rng, size, cell) for k, cell in enumerate((24, 12, 6, 3)))
  total = (total - total.min()) / max(total.max() - total.min(), 1e-6)
  palette = rng.uniform(0, 1, (3, 3))
  # Piecewise-linear colour map through three colours.
  t = total[..., None] * 2
  low = palette[0] * (1 - np.clip(t, 0, 1)) + palette[1] * np.clip(t, 0, 1)
  return np.where(t < 1, low, palette[1] * (2 - t) + palette[2] * (t - 1))


def _mix(masks, num_colors, rng):
  colors = rng.uniform(0, 1, (num_colors, 3))
  image = np.broadcast_to(colors[0], masks[0].shape + (3,)).copy()
  for mask, color in zip(masks, colors[1:]):
    image = image * (1 - mask[..., None]) + color * mask[..., None]
  return image


_MASKS = {"stripes": _stripes, "checkers": _checkers, "dots": _dots, "plaid": _plaid}
_IMAGES = {"waves": _waves, "noise": _noise}


def texture(family_seed: int, style_id: int, size: int) -> np.ndarray:
  """The generated style texture `style_id` at `size` x `size` pixels.

  Args:
    family_seed: the family seed.
    style_id: a non-negative integer; the kind is `TEXTURES[style_id % 6]`.
    size: side in pixels.

  Returns:
    float32 `[size, size, 3]` in [0, 1], the same for the same arguments.
  """
  rng = np.random.default_rng([int(family_seed), STYLE_SALT, int(style_id)])
  kind = TEXTURES[int(style_id) % len(TEXTURES)]
  if kind in _IMAGES:
    image = _IMAGES[kind](rng, size)
  else:
    masks, num_colors = _MASKS[kind](rng, size)
    image = _mix(masks, num_colors, rng)
  return np.clip(image, 0.0, 1.0).astype(np.float32)


def style_image(family_seed, style_id, size, paths=None):
  """Style `style_id`: the user's file `paths[style_id]` (centre square, resized), else a texture."""
  if paths:
    image = load_image_file(paths[int(style_id)])
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return resize(image[top:top + side, left:left + side], size)
  return texture(family_seed, style_id, size)
