"""Neural art: style transfer as an optimisation problem over pixels (Andrychowicz et al. 2016, 3.4).

The optimised variable is an image; the loss (Gatys et al. 2016, "Image style
transfer using convolutional neural networks") is a content term, the
distance of the image's features to the content image's features at one
layer, plus a style term, the distance of the Gram matrices of every layer's
features to the style image's. Images come from data shipped with installed
packages or are generated (`art_images`); features come from a fixed random
conv net (`art_features`, which says why) or the user's Keras model.
"""

import numpy as np
import tensorflow as tf

from keras_l2o.problems import art_features
from keras_l2o.problems import art_images
from keras_l2o.problems import base
from keras_l2o.problems import mlp


def _check_weight(arg, value):
  if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or value < 0:
    raise ValueError(f"Argument `{arg}` must be a non-negative number. Received: {arg}={value!r}")
  return float(value)


def _check_style_paths(style_paths):
  if style_paths is None:
    return None
  if not isinstance(style_paths, dict) or sorted(style_paths) != sorted(base.SPLITS) or not all(
      isinstance(v, (list, tuple)) and v for v in style_paths.values()):
    raise ValueError("Argument `style_paths` must map each of 'train', 'validation', 'test' to a "
                     f"non-empty list of image files. Received: style_paths={style_paths!r}")
  return {split: [str(p) for p in style_paths[split]] for split in base.SPLITS}


class NeuralArtFamily(base.ProblemFamily):
  """Style transfer problems: find the image with the content of one image and the style of another.

  A problem draws a content image (`art_images.content_image`: crops of
  scikit-learn's photos or upscaled digits, from its split's disjoint part)
  and a style id, then starts from the content image plus Gaussian noise of
  standard deviation `init_noise`. With features `F_l` of the feature net's
  layers and Gram matrices `G_l` (`art_features.gram_matrix`), the loss of an
  image `x` (content `c`, style `s`) is

      content_weight * |F_k(x) - F_k(c)|^2 / |F_k(c)|^2
      + style_weight * mean_l |G_l(x) - G_l(s)|^2 / |G_l(s)|^2

  (relative squared errors, so the loss is O(1) at every image size), with
  `k = content_layer`. It is one deterministic objective (`full_batch`).

  Styles are split by id: train styles are ids `[0, train_styles)`,
  validation styles the next `validation_styles` ids, test styles the next
  `test_styles`, so held-out problems have styles never seen in meta-training.
  `held_out_styles=False` makes validation and test problems use the train
  styles (new content only), the paper's first generalisation test.

  Tensors of a problem: `x0`, `content`, `style` (`[size, size, 3]`),
  `content_features`, `style_gram_0`, ... (the targets), `style_id` (int64).

  Args:
    seed: family seed: problems, digit splits, textures and the feature net
      are drawn from it.
    image_size: side of the (square) images in pixels.
    horizon: default number of optimizer steps.
    content_weight: weight of the content term.
    style_weight: weight of the style term.
    init_noise: standard deviation of the noise added to the content image
      to give the initial image.
    held_out_styles: whether validation and test problems have their own styles.
    train_styles, validation_styles, test_styles: styles per split.
    content_sources: names from `art_images.CONTENT_SOURCES`.
    content_paths: the user's content image files (replace `content_sources`).
    style_paths: the user's style image files, a dict mapping `"train"`,
      `"validation"` and `"test"` to lists (replace the generated textures).
    feature_net_path: the user's Keras feature network (`art_features.KerasFeatureNet`).
    content_layer: index of the feature map of the content term.
    feature_channels, feature_strides: layers of the random feature net.

  Example:

  >>> from keras_l2o import problems
  >>> family = problems.get("neural_art", seed=0, image_size=32)
  >>> p = family.sample("test", 0)
  >>> (image,) = family.init_params(p.tensors)
  >>> tuple(image.shape)
  (32, 32, 3)
  >>> bool(family.loss(p.tensors, [image], family.batch(p.tensors, 0)) > 0)
  True
  """

  name = "neural_art"
  full_batch = True

  @classmethod
  def meta_train_defaults(cls, **registered) -> dict:
    # 64x64 style transfer (issue 23): one thread per op keeps a run on one core.
    return {"num_steps": 1200, "validation_every": 100, "validation_problems": 4,
            "bptt": {"intra_op_threads": 1, "inter_op_threads": 1}}

  def __init__(self, seed: int = 0, *, image_size: int = 64, horizon: int = 100,
               content_weight: float = 1.0, style_weight: float = 1.0, init_noise: float = 0.1,
               held_out_styles: bool = True, train_styles: int = 12, validation_styles: int = 6,
               test_styles: int = 12, content_sources=art_images.CONTENT_SOURCES,
               content_paths=None, style_paths=None, feature_net_path: str = None,
               content_layer: int = 1, feature_channels=(16, 32, 32), feature_strides=(1, 2, 2)):
    image_size = mlp.check_positive_int("image_size", image_size)
    horizon = mlp.check_positive_int("horizon", horizon)
    counts = {"train": mlp.check_positive_int("train_styles", train_styles),
              "validation": mlp.check_positive_int("validation_styles", validation_styles),
              "test": mlp.check_positive_int("test_styles", test_styles)}
    content_sources = tuple(content_sources)
    unknown = [s for s in content_sources if s not in art_images.CONTENT_SOURCES]
    if not content_sources or unknown:
      raise ValueError(f"Argument `content_sources` must be a non-empty list of "
                       f"{list(art_images.CONTENT_SOURCES)}. Received: "
                       f"content_sources={list(content_sources)!r}")
    style_paths = _check_style_paths(style_paths)
    if style_paths is not None:
      counts = {split: len(style_paths[split]) for split in base.SPLITS}
    super().__init__(seed, image_size=image_size, horizon=horizon,
                     content_weight=_check_weight("content_weight", content_weight),
                     style_weight=_check_weight("style_weight", style_weight),
                     init_noise=_check_weight("init_noise", init_noise),
                     held_out_styles=bool(held_out_styles), train_styles=counts["train"],
                     validation_styles=counts["validation"], test_styles=counts["test"],
                     content_sources=list(content_sources),
                     content_paths=None if content_paths is None else list(content_paths),
                     style_paths=style_paths, feature_net_path=feature_net_path,
                     content_layer=int(content_layer),
                     feature_channels=list(mlp.check_sizes("feature_channels", feature_channels,
                                                           allow_empty=False)),
                     feature_strides=list(mlp.check_sizes("feature_strides", feature_strides,
                                                          allow_empty=False)))
    self.default_horizon = horizon
    self.image_size = image_size
    self._counts = counts
    self._style_paths = style_paths
    if feature_net_path:
      self.feature_net = art_features.KerasFeatureNet(feature_net_path)
    else:
      self.feature_net = art_features.RandomFeatureNet(self.seed, feature_channels,
                                                       feature_strides)
    if not 0 <= content_layer < self.feature_net.num_layers:
      raise ValueError(f"Argument `content_layer` must be in [0, {self.feature_net.num_layers}) "
                       f"(the feature net's layers). Received: content_layer={content_layer!r}")

  def style_ids(self, split: str) -> list:
    """The style ids problems of `split` draw from (disjoint across splits if held out)."""
    if split not in base.SPLITS:
      raise ValueError(f"Unknown split {split!r}. Valid splits: {list(base.SPLITS)}.")
    if not self._config["held_out_styles"]:
      split = "train"
    start = sum(self._counts[s] for s in base.SPLITS[:base.SPLITS.index(split)])
    return list(range(start, start + self._counts[split]))

  def _style(self, style_id):
    if self._style_paths is None:
      return art_images.texture(self.seed, style_id, self.image_size)
    flat = [p for split in base.SPLITS for p in self._style_paths[split]]
    return art_images.style_image(self.seed, style_id, self.image_size, flat)

  def _sample_tensors(self, split, rng, seed):
    ids = self.style_ids(split)
    style_id = ids[int(rng.integers(len(ids)))]
    content = art_images.content_image(self.seed, split, rng, self.image_size,
                                       tuple(self._config["content_sources"]),
                                       self._config["content_paths"])
    style = self._style(style_id)
    noise = self._config["init_noise"] * rng.standard_normal(content.shape)
    content_features = self.feature_net(tf.constant(content[None]))[self._config["content_layer"]]
    tensors = {"x0": tf.constant(content + noise, tf.float32),
               "content": tf.constant(content), "style": tf.constant(style),
               "content_features": content_features[0],
               "style_id": tf.constant(style_id, tf.int64)}
    for i, features in enumerate(self.feature_net(tf.constant(style[None]))):
      tensors[f"style_gram_{i}"] = art_features.gram_matrix(features)[0]
    return tensors

  def init_params(self, tensors):
    return [tf.identity(tensors["x0"])]

  def batch(self, tensors, step):
    return ()  # one deterministic objective

  def loss_terms(self, tensors, image):
    """`(content term, style term)` of `image` `[size, size, 3]`, unweighted scalars."""
    features = self.feature_net(image[None])
    dtype = image.dtype
    target = tf.cast(tensors["content_features"], dtype)
    content = tf.reduce_sum(tf.square(features[self._config["content_layer"]][0] - target)) / (
        tf.reduce_sum(tf.square(target)) + 1e-12)
    style = []
    for i, f in enumerate(features):
      gram = tf.cast(tensors[f"style_gram_{i}"], dtype)
      style.append(tf.reduce_sum(tf.square(art_features.gram_matrix(f)[0] - gram)) / (
          tf.reduce_sum(tf.square(gram)) + 1e-12))
    return content, tf.add_n(style) / len(style)

  def losses(self, tensors, params, batch):
    (image,) = params
    content, style = self.loss_terms(tensors, image)
    total = self._config["content_weight"] * content + self._config["style_weight"] * style
    return tf.reshape(total, [1])
