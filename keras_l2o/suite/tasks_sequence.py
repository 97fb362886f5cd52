"""Suite tasks on generated sequences and text: GRU, LSTM, a transformer block, a wide embedding."""

import keras

from keras_l2o.suite import base
from keras_l2o.suite import data as data_lib

_CE = keras.losses.SparseCategoricalCrossentropy


@base.register("adding_gru", kind="regression", dataset="adding_problem",
               architecture="recurrent", horizon=1200, batch_size=64)
def adding_gru(seed):
  """The adding problem (length 20): a 32-unit GRU and a linear head, mean squared error."""
  x, y = data_lib.adding_problem(seed)
  train, validation, test = base.split_arrays(x, y, seed)
  model = keras.Sequential([keras.Input((20, 2)), keras.layers.GRU(32), keras.layers.Dense(1)])
  return base.Task(model, train, validation, test, "mse", 0, 0, [])


@base.register("count_tokens_lstm", kind="classification", dataset="count_tokens",
               architecture="recurrent", horizon=1000, batch_size=64)
def count_tokens_lstm(seed):
  """Which of two tokens occurs more often (length 24, 8 tokens): embedding 16 + LSTM(32)."""
  x, y = data_lib.count_tokens(seed)
  train, validation, test = base.split_arrays(x, y, seed)
  model = keras.Sequential([
      keras.Input((24,), dtype="int32"),
      keras.layers.Embedding(8, 16),
      keras.layers.LSTM(32),
      keras.layers.Dense(2),
  ])
  return base.Task(model, train, validation, test, _CE(from_logits=True), 0, 0, ["accuracy"])


def _transformer_block(vocab, length, width=32, heads=2):
  tokens = keras.Input((length,), dtype="int32")
  positions = keras.ops.arange(length)
  h = keras.layers.Embedding(vocab, width)(tokens) + keras.layers.Embedding(length, width)(
      positions)
  attention = keras.layers.MultiHeadAttention(heads, width // heads)(h, h, use_causal_mask=True)
  h = keras.layers.LayerNormalization()(h + attention)
  feed_forward = keras.layers.Dense(width)(keras.layers.Dense(2 * width, activation="gelu")(h))
  h = keras.layers.LayerNormalization()(h + feed_forward)
  return keras.Model(tokens, keras.layers.Dense(vocab)(h))


@base.register("markov_text_transformer", kind="language_model", dataset="markov_text",
               architecture="transformer", horizon=1000, batch_size=32)
def markov_text_transformer(seed):
  """Next-token prediction on a toy second-order Markov language: one causal transformer block."""
  x, y = data_lib.markov_text(seed)
  train, validation, test = base.split_arrays(x, y, seed)
  model = _transformer_block(24, x.shape[1])
  return base.Task(model, train, validation, test, _CE(from_logits=True), 0, 0, ["accuracy"])


@base.register("topics_wide_embedding", kind="classification", dataset="topic_documents",
               architecture="embedding", horizon=1000, batch_size=64)
def topics_wide_embedding(seed):
  """Topics of bag-of-words documents: a 16,384 x 80 embedding (1.3M parameters), pooled, MLP head."""
  x, y = data_lib.topic_documents(seed)
  train, validation, test = base.split_arrays(x, y, seed)
  model = keras.Sequential([
      keras.Input((32,), dtype="int32"),
      keras.layers.Embedding(16384, 80),
      keras.layers.GlobalAveragePooling1D(),
      keras.layers.Dense(32, activation="relu"),
      keras.layers.Dense(8),
  ])
  return base.Task(model, train, validation, test, _CE(from_logits=True), 0, 0, ["accuracy"])
