"""Independent numpy implementations of every rule: the test oracles.

Each reference is `step(meta_params, grad, state, step) -> (update, new_state)`
with numpy arrays and float64 arithmetic, written from the formulas in the
papers / Keras docs rather than from keras_l2o's code.
"""

import math

import numpy as np


def sgd(config):
  del config

  def step(meta, g, state, t):
    return -g, state

  return step, lambda shape: ()


def momentum(config, nesterov=False):
  mu = config.get("momentum", 0.9)

  def step(meta, g, state, t):
    (m,) = state
    m = mu * m - g
    return (mu * m - g if nesterov else m), (m,)

  return step, lambda shape: (np.zeros(shape),)


def nag(config):
  return momentum(config, nesterov=True)


def rmsprop(config):
  rho = config.get("rho", 0.9)
  eps = config.get("epsilon", 1e-7)
  mu = config.get("momentum", 0.0)
  centered = config.get("centered", False)

  def step(meta, g, state, t):
    v, buf, avg = state
    v = rho * v + (1 - rho) * g * g
    if centered:
      avg = rho * avg + (1 - rho) * g
      inc = g / np.sqrt(v - avg * avg + eps)
    else:
      inc = g / np.sqrt(v + eps)
    if mu > 0:
      buf = mu * buf + inc
      inc = buf
    return -inc, (v, buf, avg)

  return step, lambda shape: (np.zeros(shape),) * 3


def adam(config):
  b1 = config.get("beta_1", 0.9)
  b2 = config.get("beta_2", 0.999)
  eps = config.get("epsilon", 1e-7)
  amsgrad = config.get("amsgrad", False)

  def step(meta, g, state, t):
    m, v, vmax = state
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    vmax = np.maximum(vmax, v)
    denom = np.sqrt(vmax if amsgrad else v) + eps
    update = -m * math.sqrt(1 - b2**t) / (1 - b1**t) / denom
    return update, (m, v, vmax)

  return step, lambda shape: (np.zeros(shape),) * 3


def adagrad(config):
  a0 = config.get("initial_accumulator_value", 0.1)
  eps = config.get("epsilon", 1e-7)

  def step(meta, g, state, t):
    (acc,) = state
    acc = acc + g * g
    return -g / np.sqrt(acc + eps), (acc,)

  return step, lambda shape: (np.full(shape, a0),)


def _sigmoid(a):
  return 1.0 / (1.0 + np.exp(-a))


def lstm(config):
  """Coordinatewise LSTM, written per coordinate with explicit gate equations."""
  hidden = config.get("hidden_size", 20)
  layers = config.get("num_layers", 2)
  preset = config.get("preset", "paper")
  prep = config.get("preprocessing", {"paper": "log_sign", "dm_code": "log_sign_clamped"}[preset])
  const = config.get("preprocess_constant", {"paper": 10.0, "dm_code": 5.0}[preset])
  scale = config.get("output_scale", {"paper": 0.1, "dm_code": 0.01}[preset])

  def preprocess(g):
    if prep == "log_sign":
      out = np.empty(g.shape + (2,))
      big = np.abs(g) >= math.exp(-const)
      out[..., 0] = np.where(big, np.log(np.where(big, np.abs(g), 1.0)) / const, -1.0)
      out[..., 1] = np.where(big, np.sign(g), math.exp(const) * g)
      return out
    if prep == "log_sign_clamped":
      return np.stack([np.maximum(np.log(np.abs(g) + 1e-10) / const, -1.0),
                       np.clip(g * math.exp(const), -1.0, 1.0)], -1)
    return g[..., None]

  def step(meta, g, state, t):
    x = preprocess(g.reshape(-1))
    new_state = []
    for layer in range(layers):
      h = state[2 * layer].reshape(-1, hidden)
      c = state[2 * layer + 1].reshape(-1, hidden)
      w = meta[f"layer{layer + 1}"]["kernel"]
      b = meta[f"layer{layer + 1}"]["bias"]
      w_x, w_h = w[:x.shape[1]], w[x.shape[1]:]
      z = x @ w_x + h @ w_h + b
      i = _sigmoid(z[:, :hidden])
      f = _sigmoid(z[:, hidden:2 * hidden])
      cand = np.tanh(z[:, 2 * hidden:3 * hidden])
      o = _sigmoid(z[:, 3 * hidden:])
      c = f * c + i * cand
      h = o * np.tanh(c)
      new_state += [h.reshape(g.shape + (hidden,)), c.reshape(g.shape + (hidden,))]
      x = h
    out = x @ meta["output"]["kernel"] + meta["output"]["bias"]
    return (scale * out[:, 0]).reshape(g.shape), tuple(new_state)


  return step, lambda shape: (np.zeros(tuple(shape) + (hidden,)),) * (2 * layers)


def _mlp_parts(config):
  """The mlp rule's momenta update and its network on `(g, m, s, v)`, shared by both mlp rules."""
  b1 = config.get("beta_1", 0.9)
  bs = config.get("beta_slow", 0.99)
  b2 = config.get("beta_2", 0.999)
  eps = config.get("epsilon", 1e-8)
  scale = config.get("step_scale", 1e-3)

  def momenta(g, m, s):
    return b1 * m + (1 - b1) * g, bs * s + (1 - bs) * g

  def network(meta, g, m, s, v, t):
    r = 1.0 / (np.sqrt(v / (1 - b2**t)) + eps)
    feats = np.stack([g * r, m / (1 - b1**t) * r, s / (1 - bs**t) * r], -1).reshape(-1, 3)
    hid = np.maximum(feats @ meta["hidden"]["kernel"] + meta["hidden"]["bias"], 0.0)
    out = feats @ meta["skip"] + hid @ meta["output"]["kernel"] + meta["output"]["bias"]
    return (scale * out[:, 0]).reshape(g.shape)

  return b2, momenta, network


def mlp(config):
  b2, momenta, network = _mlp_parts(config)

  def step(meta, g, state, t):
    m, s, v = state
    m, s = momenta(g, m, s)
    v = b2 * v + (1 - b2) * g * g
    return network(meta, g, m, s, v, t), (m, s, v)

  return step, lambda shape: (np.zeros(shape),) * 3


def mlp_factored(config):
  """The mlp rule with Adafactor's v_ij = R_i C_j / mean(R) on large enough matrices."""
  b2, momenta, network = _mlp_parts(config)
  min_dim = config.get("min_dim_to_factor", 1)
  eps_1 = config.get("epsilon_1", 1e-30)

  def factored(shape):
    return len(shape) >= 2 and min(shape[-2:]) >= min_dim

  def step(meta, g, state, t):
    m, s, rows, cols = state
    m, s = momenta(g, m, s)
    square = g * g + eps_1
    if factored(g.shape):
      rows = b2 * rows + (1 - b2) * square.mean(axis=-1)
      cols = b2 * cols + (1 - b2) * square.mean(axis=-2)
      v = np.einsum("...i,...j->...ij", rows, cols) / rows.mean(axis=-1)[..., None, None]
    else:
      rows = b2 * rows + (1 - b2) * square
      v = rows
    return network(meta, g, m, s, v, t), (m, s, rows, cols)

  def init(shape):
    shape = tuple(shape)
    if factored(shape):
      return (np.zeros(shape), np.zeros(shape), np.zeros(shape[:-1]),
              np.zeros(shape[:-2] + shape[-1:]))
    return np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros(1)

  return step, init


REFERENCES = {
    "sgd": sgd, "momentum": momentum, "nag": nag, "rmsprop": rmsprop, "adam": adam,
    "adagrad": adagrad,
    "lstm": lstm, "mlp": mlp, "mlp_factored": mlp_factored,
}
