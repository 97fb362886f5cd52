"""Data the suite generates locally: nothing here downloads.

* `mnist1d_style`: 1-D signals in the spirit of Greydanus's MNIST-1D: ten smooth
  class templates, randomly scaled, shifted and sheared, with correlated and
  white noise, 40 samples long.
* `adding_problem`: Hochreiter & Schmidhuber's adding task (sum of the two
  marked values of a random sequence).
* `count_tokens`: token sequences labelled by which of two tokens occurs more.
* `markov_text`: sequences from a sparse second-order Markov chain (a toy
  language), for next-token prediction.
* `topic_documents`: bag-of-words documents, each from one of several topics
  with its own Zipf-distributed vocabulary.

Each function is deterministic in its `seed`.
"""

import numpy as np

_TEMPLATE_SEED = 1729  # the MNIST-1D-style class templates are fixed, not per task seed
_LANGUAGE_SEED = 314  # so is the toy language and the topics' vocabularies


def mnist1d_style(seed, num_examples=4000, length=40, num_classes=10):
  """`x [n, length, 1]` float32 signals and `y [n]` int32 class labels."""
  template_rng = np.random.default_rng(_TEMPLATE_SEED)
  grid = np.linspace(0.0, 1.0, 12)
  knots = template_rng.normal(size=(num_classes, 5))
  templates = np.stack([np.interp(grid, np.linspace(0, 1, 5), k) for k in knots])
  rng = np.random.default_rng(seed)
  y = rng.integers(0, num_classes, num_examples).astype(np.int32)
  padded = np.zeros((num_examples, 36))
  shifts = rng.integers(0, 24, num_examples)
  scales = rng.uniform(0.7, 1.3, num_examples)
  for i in range(num_examples):
    padded[i, shifts[i]:shifts[i] + 12] = templates[y[i]] * scales[i]
  t_in = np.linspace(0.0, 1.0, 36)
  t_out = np.linspace(0.0, 1.0, length)
  shear = rng.uniform(-0.75, 0.75, num_examples)[:, None] * (t_out - 0.5)[None]
  signal = np.stack([np.interp(t_out, t_in, p) for p in padded]) + shear
  kernel = np.exp(-0.5 * (np.arange(-6, 7) / 2.0) ** 2)
  kernel /= kernel.sum()
  correlated = np.stack([np.convolve(n, kernel, mode="same")
                         for n in rng.normal(0.0, 0.6, (num_examples, length))])
  x = signal + correlated + rng.normal(0.0, 0.1, (num_examples, length))
  return x[..., None].astype(np.float32), y


def adding_problem(seed, num_examples=4000, length=20):
  """`x [n, length, 2]` (value, marker) pairs and `y [n, 1]`: the sum of the two marked values."""
  rng = np.random.default_rng(seed)
  values = rng.uniform(0.0, 1.0, (num_examples, length))
  markers = np.zeros_like(values)
  first = rng.integers(0, length // 2, num_examples)
  second = rng.integers(length // 2, length, num_examples)
  rows = np.arange(num_examples)
  markers[rows, first] = 1.0
  markers[rows, second] = 1.0
  y = (values * markers).sum(axis=1, keepdims=True)
  return np.stack([values, markers], axis=-1).astype(np.float32), y.astype(np.float32)


def count_tokens(seed, num_examples=4000, length=24, vocab=8):
  """`x [n, length]` int32 tokens and `y [n]`: 1 if token 1 occurs more often than token 2."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, vocab, (num_examples, length))
  ones, twos = (x == 1).sum(axis=1), (x == 2).sum(axis=1)
  ties = ones == twos
  x[ties, rng.integers(0, length, ties.sum())] = 1  # break ties: every label is defined
  ones, twos = (x == 1).sum(axis=1), (x == 2).sum(axis=1)
  return x.astype(np.int32), (ones > twos).astype(np.int32)


def markov_text(seed, num_examples=3000, length=25, vocab=24, branching=3):
  """`x [n, length-1]` input tokens and `y [n, length-1]` next tokens of a toy language."""
  language = np.random.default_rng(_LANGUAGE_SEED)
  successors = language.integers(0, vocab, (vocab, vocab, branching))
  probabilities = language.dirichlet(np.ones(branching), (vocab, vocab))
  rng = np.random.default_rng(seed)
  tokens = np.zeros((num_examples, length), np.int32)
  tokens[:, :2] = rng.integers(0, vocab, (num_examples, 2))
  for t in range(2, length):
    a, b = tokens[:, t - 2], tokens[:, t - 1]
    cumulative = np.cumsum(probabilities[a, b], axis=1)
    choice = (rng.uniform(size=(num_examples, 1)) > cumulative).sum(axis=1)
    tokens[:, t] = successors[a, b, np.minimum(choice, branching - 1)]
  return tokens[:, :-1], tokens[:, 1:]


def topic_documents(seed, num_examples=4000, length=32, vocab=16384, topics=8):
  """`x [n, length]` int32 word ids and `y [n]` topics; each topic favours its own words."""
  language = np.random.default_rng(_LANGUAGE_SEED)
  ranks = np.arange(1, vocab + 1, dtype=np.float64)
  zipf = ranks ** -1.1
  zipf /= zipf.sum()
  orders = np.stack([language.permutation(vocab) for _ in range(topics)])
  rng = np.random.default_rng(seed)
  y = rng.integers(0, topics, num_examples).astype(np.int32)
  ranks_drawn = rng.choice(vocab, size=(num_examples, length), p=zipf)
  topical = orders[y][np.arange(num_examples)[:, None], ranks_drawn]
  background = rng.choice(vocab, size=(num_examples, length), p=zipf)  # shared common words
  use_topic = rng.uniform(size=(num_examples, length)) < 0.5
  return np.where(use_topic, topical, background).astype(np.int32), y
