"""The neural_art family: loss terms, Gram matrices, disjoint styles and content, determinism."""

import os

import doctest
import functools
import json
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_l2o
from keras_l2o import problems
from keras_l2o import unroll as unroll_lib
from keras_l2o.problems import art_features
from keras_l2o.problems import art_images
from keras_l2o.problems import neural_art

SIZE = 32  # small images keep the tests fast


@functools.lru_cache(maxsize=None)
def _family(seed=3, **config):
  return problems.get("neural_art", seed=seed, image_size=SIZE, **config)


class LossTermsTest(tf.test.TestCase):

  def test_content_term_is_zero_at_the_content_image_and_positive_elsewhere(self):
    family = _family()
    tensors = family.sample("test", 1).tensors
    content, style = family.loss_terms(tensors, tensors["content"])
    self.assertEqual(float(content), 0.0)
    self.assertGreater(float(style), 0.01)  # the content image does not have the style
    content, _ = family.loss_terms(tensors, tensors["x0"])  # content + noise
    self.assertGreater(float(content), 1e-3)

  def test_style_term_is_zero_at_the_style_image(self):
    family = _family()
    tensors = family.sample("train", 0).tensors
    content, style = family.loss_terms(tensors, tensors["style"])
    self.assertAllClose(float(style), 0.0, atol=1e-10)
    self.assertGreater(float(content), 0.01)

  def test_loss_is_the_weighted_sum_of_the_terms(self):
    family = _family(content_weight=0.5, style_weight=2.0)
    tensors = family.sample("validation", 0).tensors
    image = tensors["x0"]
    content, style = family.loss_terms(tensors, image)
    loss = family.losses(tensors, [image], family.batch(tensors, 0))
    self.assertEqual(loss.shape, (1,))
    self.assertAllClose(loss[0], 0.5 * content + 2.0 * style, rtol=1e-6)

  def test_gram_matrix_matches_a_numpy_oracle(self):
    features = np.random.default_rng(0).standard_normal((2, 5, 7, 4)).astype(np.float64)
    flat = features.reshape(2, 35, 4)
    expected = np.stack([f.T @ f / 35.0 for f in flat])
    self.assertAllClose(art_features.gram_matrix(tf.constant(features)), expected, atol=1e-12)

  def test_style_target_is_the_gram_of_the_style_features(self):
    family = _family()
    tensors = family.sample("train", 2).tensors
    features = family.feature_net(tensors["style"][None])
    for i, f in enumerate(features):
      flat = f.numpy().reshape(-1, f.shape[-1]).astype(np.float64)
      self.assertAllClose(tensors[f"style_gram_{i}"], flat.T @ flat / len(flat), rtol=1e-4,
                          atol=1e-6)

  def test_loss_is_finite_and_differentiable_in_the_image(self):
    family = _family()
    tensors = family.sample("train", 1).tensors
    image = tf.cast(tensors["x0"], tf.float64)
    with tf.GradientTape() as tape:
      tape.watch(image)
      loss = family.loss(tensors, [image], ())
    grad = tape.gradient(loss, image)
    self.assertTrue(np.isfinite(float(loss)))
    self.assertEqual(grad.shape, image.shape)
    self.assertTrue(np.all(np.isfinite(grad.numpy())))
    self.assertGreater(float(tf.norm(grad)), 0.0)
    # The directional derivative agrees with a central difference (float64).
    direction = tf.constant(np.random.default_rng(1).standard_normal(image.shape))
    eps = 1e-5
    numeric = (family.loss(tensors, [image + eps * direction], ()) -
               family.loss(tensors, [image - eps * direction], ())) / (2 * eps)
    self.assertAllClose(float(tf.reduce_sum(grad * direction)), float(numeric), rtol=1e-4)

  def test_gradient_steps_decrease_the_loss(self):
    family = _family()
    tensors = family.sample("test", 0).tensors
    image = tf.Variable(tensors["x0"])
    first = None
    for _ in range(10):
      with tf.GradientTape() as tape:
        loss = family.loss(tensors, [image], ())
      first = float(loss) if first is None else first
      image.assign_sub(0.3 * tape.gradient(loss, image))
    self.assertLess(float(family.loss(tensors, [image], ())), 0.97 * first)


class SplitsTest(tf.test.TestCase):

  def test_style_ids_are_disjoint_across_splits(self):
    family = _family(train_styles=4, validation_styles=2, test_styles=3)
    ids = {split: family.style_ids(split) for split in problems.SPLITS}
    self.assertEqual(ids, {"train": [0, 1, 2, 3], "validation": [4, 5], "test": [6, 7, 8]})
    for split in problems.SPLITS:
      drawn = {int(family.sample(split, i).tensors["style_id"]) for i in range(12)}
      self.assertContainsSubset(drawn, set(ids[split]))
      self.assertGreater(len(drawn), 1)

  def test_different_style_ids_give_different_textures(self):
    textures = [art_images.texture(3, i, SIZE) for i in range(12)]
    for i, a in enumerate(textures):
      self.assertEqual(a.shape, (SIZE, SIZE, 3))
      self.assertBetween(float(a.min()), 0.0, 1.0)
      self.assertBetween(float(a.max()), 0.0, 1.0)
      for b in textures[i + 1:]:
        self.assertGreater(float(np.abs(a - b).mean()), 0.01)

  def test_held_out_styles_false_shares_the_train_styles(self):
    family = _family(held_out_styles=False, train_styles=2)
    self.assertEqual(family.style_ids("test"), [0, 1])
    self.assertIn(int(family.sample("test", 0).tensors["style_id"]), (0, 1))

  def test_content_tiles_and_digits_are_disjoint_across_splits(self):
    shape = art_images.sample_photos()[0].shape
    tiles = {s: set(art_images.split_tiles(shape, 3, s)) for s in problems.SPLITS}
    self.assertEqual([len(tiles[s]) for s in problems.SPLITS], [9, 3, 3])  # 3 x 5 tiles
    digits = {s: set(art_images.digit_indices(3)[s].tolist()) for s in problems.SPLITS}
    for split_sets in (tiles, digits):
      self.assertEmpty(split_sets["train"] & split_sets["validation"])
      self.assertEmpty(split_sets["train"] & split_sets["test"])
      self.assertEmpty(split_sets["validation"] & split_sets["test"])
    self.assertEqual(sum(len(v) for v in digits.values()), 1797)


class DeterminismTest(tf.test.TestCase):

  def test_same_draw_gives_identical_tensors(self):
    first, second = _family().sample("validation", 2), problems.get(
        "neural_art", seed=3, image_size=SIZE).sample("validation", 2)
    self.assertEqual(sorted(first.tensors), sorted(second.tensors))
    for key in first.tensors:
      self.assertAllEqual(first.tensors[key], second.tensors[key])

  def test_other_draws_and_family_seeds_differ(self):
    family, other = _family(), _family(seed=4)
    a, b = family.sample("train", 0).tensors, family.sample("train", 1).tensors
    self.assertNotAllClose(a["x0"], b["x0"])
    self.assertNotAllClose(family.feature_net.kernels[0], other.feature_net.kernels[0])
    self.assertNotAllClose(art_images.texture(3, 0, SIZE), art_images.texture(4, 0, SIZE))

  def test_config_round_trips_through_json(self):
    family = _family(style_weight=2.0)
    config = json.loads(json.dumps(family.get_config()))
    rebuilt = problems.get("neural_art", **config)
    self.assertEqual(rebuilt.get_config(), family.get_config())
    self.assertAllEqual(rebuilt.sample("test", 0).tensors["x0"], family.sample("test", 0).tensors["x0"])


class SizesAndUnrollTest(tf.test.TestCase):

  def test_image_size_sets_the_variable_and_feature_shapes(self):
    family = problems.get("neural_art", seed=0, image_size=48)
    tensors = family.sample("train", 0).tensors
    self.assertEqual(family.init_params(tensors)[0].shape, (48, 48, 3))
    self.assertEqual(tensors["style_gram_2"].shape, (32, 32))
    self.assertEqual(family.num_parameters(), 48 * 48 * 3)

  def test_lstm_unroll_has_a_finite_meta_gradient(self):
    family = _family()
    rule = keras_l2o.rules.get("lstm")
    meta = tf.nest.map_structure(tf.Variable, rule.init_meta_params(0))
    tensors = family.sample("train", 0).tensors
    with tf.GradientTape() as tape:
      losses, final, _ = unroll_lib.unroll(rule, meta, family, tensors,
                                           unroll_lib.init_state(rule, family, tensors), 3)
      meta_loss = tf.reduce_sum(losses) + final
    grads = tape.gradient(meta_loss, tf.nest.flatten(meta))
    self.assertTrue(all(np.all(np.isfinite(g.numpy())) for g in grads if g is not None))
    self.assertGreater(sum(float(tf.norm(g)) for g in grads if g is not None), 0.0)
    self.assertLess(float(final), float(losses[0]))


class UserFilesTest(tf.test.TestCase):

  def test_user_images_and_keras_feature_net(self):
    directory = tempfile.mkdtemp(dir=self.get_temp_dir())
    rng = np.random.default_rng(0)
    content = os.path.join(directory, "content.png")
    keras.utils.save_img(content, rng.uniform(0, 255, (128, 384, 3)), scale=False)
    styles = {}
    for split in problems.SPLITS:
      styles[split] = [os.path.join(directory, f"{split}.png")]
      keras.utils.save_img(styles[split][0], rng.uniform(0, 255, (40, 50, 3)), scale=False)
    net = keras.Sequential([keras.Input((None, None, 3)),
                            keras.layers.Conv2D(4, 3, strides=2, activation="relu")])
    net_path = os.path.join(directory, "net.keras")
    net.save(net_path)
    family = problems.get("neural_art", seed=0, image_size=SIZE, content_paths=[content],
                          style_paths=styles, feature_net_path=net_path, content_layer=0)
    self.assertEqual(family.style_ids("test"), [2])
    tensors = family.sample("test", 0).tensors
    self.assertEqual(tensors["style_gram_0"].shape, (4, 4))
    content_term, _ = family.loss_terms(tensors, tensors["content"])
    self.assertAllClose(float(content_term), 0.0, atol=1e-12)
    self.assertTrue(np.isfinite(float(family.loss(tensors, [tensors["x0"]], ()))))


class ErrorsTest(tf.test.TestCase):

  def test_invalid_configs_are_rejected_with_clear_messages(self):
    cases = [
        ({"image_size": 0}, "Argument `image_size` must be a positive integer. Received: "
                            "image_size=0"),
        ({"content_sources": ["faces"]}, "Argument `content_sources` must be a non-empty list of "
                                         "['photos', 'digits']. Received: "
                                         "content_sources=['faces']"),
        ({"style_paths": ["a.png"]}, "Argument `style_paths` must map each of 'train', "
                                     "'validation', 'test' to a non-empty list of image files. "
                                     "Received: style_paths=['a.png']"),
        ({"content_layer": 3}, "Argument `content_layer` must be in [0, 3) (the feature net's "
                               "layers). Received: content_layer=3"),
        ({"style_weight": -1.0}, "Argument `style_weight` must be a non-negative number. "
                                 "Received: style_weight=-1.0"),
    ]
    for config, message in cases:
      with self.assertRaises(ValueError) as ctx:
        problems.get("neural_art", **config)
      self.assertEqual(str(ctx.exception), message)

  def test_too_small_content_image_is_rejected(self):
    with self.assertRaises(ValueError) as ctx:
      art_images.split_tiles((128, 256, 3), 0, "train")
    self.assertEqual(str(ctx.exception), "A content image must hold at least 3 tiles of 128x128 "
                     "pixels (one per split). Received an image of shape (128, 256, 3).")


class DocstringTest(tf.test.TestCase):

  def test_examples_run(self):
    for module in (neural_art, art_features):
      failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
      self.assertGreater(attempted, 0)
      self.assertEqual(failed, 0)


if __name__ == "__main__":
  tf.test.main()
