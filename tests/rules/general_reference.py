"""An independent numpy (float64) implementation of the `general` rule: the tests' oracle.

Written from the formulas in `keras_l2o/rules/general.py`'s docstring, not from
its code: explicit loops over decays, `numpy.linalg`-free Newton–Schulz.
"""

import numpy as np

MOM = (0.9, 0.99, 0.999)
BETA_V = 0.95
FAC = (0.9, 0.99, 0.999)
EPS_REL, TINY = 1e-10, 1e-30
NS = (3.4445, -4.7750, 2.0315)
CENTRES = (0.03, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1)


def init(shape):
  """State as a dict: matrices keep 3 momenta, v, and 3 row / column EMAs."""
  if len(shape) >= 2:
    return {"m": [np.zeros(shape) for _ in MOM], "v": np.zeros(shape),
            "r": [np.zeros(shape[:-1]) for _ in FAC],
            "c": [np.zeros(tuple(shape[:-2]) + tuple(shape[-1:])) for _ in FAC]}
  return {"m": [np.zeros(shape)], "v": np.zeros(shape)}


def _mean2(x):
  return x.mean(axis=(-2, -1), keepdims=True)


def _norm2(x):
  return x / np.sqrt(_mean2(x * x) + TINY)


def newton_schulz(x, steps=5):
  """Quintic Newton–Schulz on the wide orientation of the last two axes."""
  tall = x.shape[-2] > x.shape[-1]
  if tall:
    x = np.swapaxes(x, -2, -1)
  x = x / (np.sqrt((x * x).sum(axis=(-2, -1), keepdims=True)) + 1e-7)
  a, b, c = NS
  for _ in range(steps):
    gram = x @ np.swapaxes(x, -2, -1)
    x = a * x + (b * gram + c * gram @ gram) @ x
  return np.swapaxes(x, -2, -1) if tall else x


def _mlp(meta, feats):
  h = feats
  i = 0
  while f"hidden_{i}" in meta:
    h = np.maximum(h @ meta[f"hidden_{i}"]["kernel"] + meta[f"hidden_{i}"]["bias"], 0.0)
    i += 1
  out = feats @ meta["skip"] + h @ meta["output"]["kernel"] + meta["output"]["bias"]
  return out[..., 0]


def step(meta, g, p, state, t, *, step_scale=1e-3, orthogonalize=True, vector_scale=1.0,
         num_training_steps=None, ns_steps=5):
  """One update `(update, new_state)` of the general rule, in float64."""
  g, p = np.asarray(g, np.float64), np.asarray(p, np.float64)
  if g.ndim < 2:
    m = MOM[0] * state["m"][0] + (1 - MOM[0]) * g
    v = BETA_V * state["v"] + (1 - BETA_V) * g * g
    m_hat, v_hat = m / (1 - MOM[0] ** t), v / (1 - BETA_V ** t)
    floor = EPS_REL * v_hat.mean() + TINY
    return -step_scale * vector_scale * m_hat / np.sqrt(v_hat + floor), {"m": [m], "v": v}
  ms = [b * mo + (1 - b) * g for b, mo in zip(MOM, state["m"])]
  v = BETA_V * state["v"] + (1 - BETA_V) * g * g
  rs = [b * r + (1 - b) * (g * g).mean(axis=-1) for b, r in zip(FAC, state["r"])]
  cs = [b * c + (1 - b) * (g * g).mean(axis=-2) for b, c in zip(FAC, state["c"])]
  rho = 1.0 / np.sqrt(v + EPS_REL * _mean2(v) + TINY)
  chans = [g, p] + ms + [g * rho] + [m * rho for m in ms]
  fac_g, fac_m, row_f, col_f = [], [], [], []
  for m, r, c in zip(ms, rs, cs):
    r_rel = r / (r.mean(axis=-1, keepdims=True) + TINY)
    c_rel = c / (c.mean(axis=-1, keepdims=True) + TINY)
    vf = r_rel[..., :, None] * c[..., None, :]
    f = 1.0 / np.sqrt(vf + EPS_REL * _mean2(vf) + TINY)
    fac_g.append(g * f)
    fac_m.append(m * f)
    row_f.append(np.broadcast_to(1.0 / np.sqrt(r_rel + TINY)[..., :, None], g.shape))
    col_f.append(np.broadcast_to(1.0 / np.sqrt(c_rel + TINY)[..., None, :], g.shape))
  chans += fac_g + fac_m + row_f + col_f
  feats = np.stack([_norm2(ch) for ch in chans], axis=-1)
  if num_training_steps:
    times = np.tanh(10.0 * (t / num_training_steps - np.asarray(CENTRES)))
    feats = np.concatenate([feats, np.broadcast_to(times, g.shape + (len(CENTRES),))], -1)
  d = _mlp(meta, feats)
  if orthogonalize:
    d = newton_schulz(d, ns_steps)
  new_state = {"m": ms, "v": v, "r": rs, "c": cs}
  return step_scale * _norm2(d), new_state
