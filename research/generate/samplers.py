"""Samplers: pure functions on logits [..., V] that compose, jit, and take an explicit key.

Each filter returns the logits with the tokens it drops set to -inf, so filters chain and the
survivors keep their relative probabilities (softmax renormalises over what is left):

  logits = top_p_mask(top_k_mask(apply_temperature(logits, 0.8), 50), 0.95)
  token = jax.random.categorical(key, logits)

`sample` applies them in that order (temperature, top-k, top-p, min-p); temperature 0 is
greedy. Thresholds may be traced values: no Python branch looks at an array's contents, and
a filter that keeps everything (k >= V, p >= 1) or a greedy draw skips the work through
lax.cond instead (decode.generate passes its settings traced, so every step would otherwise
bisect 50k logits twice and draw from them only to take the argmax).
An `allowed` mask (a grammar's tokens, research/generate/structured.py) comes before them all,
so the filters and the greedy argmax see only the tokens the grammar permits.
"""

import jax
import jax.numpy as jnp
import numpy as np


# The samplers the LLM chapter compares, by name -> keyword arguments of `sample` (and of
# decode.generate).
NAMED = {
    "greedy": dict(temperature=0.0),
    "temperature 0.8": dict(temperature=0.8),
    "top-k 20": dict(temperature=1.0, top_k=20),
    "top-p 0.9": dict(temperature=1.0, top_p=0.9),
    "min-p 0.1": dict(temperature=1.0, min_p=0.1),
}

def greedy(logits):
  """The most likely token; ties go to the lower id."""
  return jnp.argmax(logits, axis=-1)


def apply_temperature(logits, temperature):
  """p_i ∝ exp(z_i / T): T > 1 flattens the distribution, T < 1 sharpens it (T > 0)."""
  return logits / temperature


def top_k_mask(logits, k):
  """Keeps exactly the k most likely tokens (ties broken towards the lower id, as argmax)."""
  _check_number("k", k, low=1)
  return _top_k_mask(logits, k)


@jax.jit  # k traced: one compilation per shape, not one per k (the bisection is a loop)
def _top_k_mask(logits, k):
  return jax.lax.cond(k >= logits.shape[-1], lambda z: z, lambda z: _top_k_masked(z, k), logits)


def _top_k_masked(logits, k):
  key_V = _sortable(logits)
  t = _largest_threshold(key_V, lambda t: jnp.sum(key_V >= t[..., None], axis=-1) >= k)
  above, tie = key_V > t[..., None], key_V == t[..., None]
  room = k - jnp.sum(above, axis=-1, keepdims=True)  # how many of the tied tokens still fit
  keep = above | (tie & (jnp.cumsum(tie, axis=-1) <= room))
  return jnp.where(keep, logits, -jnp.inf)


def top_p_mask(logits, p):
  """Keeps the smallest set of most likely tokens whose probabilities sum to at least p.

  Token i belongs iff the tokens ranked before it hold < p (the first always belongs); ties
  rank by id. At p = 1 the float sum can reach 1 before the tail, and "sum >= 1" means all.
  """
  _check_number("p", p, low=0.0, high=1.0)
  return _top_p_mask(logits, p)


@jax.jit
def _top_p_mask(logits, p):
  return jax.lax.cond(p >= 1.0, lambda z: z, lambda z: _top_p_masked(z, p), logits)


def _top_p_masked(logits, p):
  logits32 = logits.astype(jnp.float32)
  probs = jax.nn.softmax(logits32, axis=-1)
  # Rank by logit, not by float32 probability: the order is the same, but logits a few ulps
  # apart can round to one probability and would then rank by id instead.
  key_V = _sortable(logits32)

  def enough(t):  # do the tokens at least as likely as t hold >= p?
    return jnp.sum(jnp.where(key_V >= t[..., None], probs, 0.0), axis=-1) >= p

  t = _largest_threshold(key_V, enough)  # the key of the last token kept
  above, tie = key_V > t[..., None], key_V == t[..., None]
  tie_probs = jnp.where(tie, probs, 0.0)
  before = (jnp.sum(jnp.where(above, probs, 0.0), axis=-1, keepdims=True)
            + jnp.cumsum(tie_probs, axis=-1) - tie_probs)  # mass ranked before a tied token
  keep = above | (tie & (before < p)) | (p >= 1.0)
  return jnp.where(keep, logits, -jnp.inf)


def min_p_mask(logits, min_p):
  """Drops tokens with p_i < min_p * p_max, i.e. exp(z_i - z_max) < min_p."""
  _check_number("min_p", min_p, low=0.0, high=1.0)
  ratio = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))  # p_i / p_max
  return jnp.where(ratio >= min_p, logits, -jnp.inf)


def allowed_mask(logits, allowed):
  """Drops the tokens a grammar forbids (allowed[..., i] false); None keeps every token."""
  if allowed is None:
    return logits
  return jnp.where(allowed, logits, -jnp.inf)


def filter_logits(logits, temperature=1.0, top_k=None, top_p=None, min_p=None):
  """Temperature, then top-k, top-p and min-p (each skipped when None); T = 0 keeps argmax only."""
  logits = jnp.asarray(logits)
  hot = jnp.asarray(temperature) > 0
  scaled = apply_temperature(logits, jnp.where(hot, temperature, 1.0))
  if top_k is not None:
    scaled = top_k_mask(scaled, top_k)
  if top_p is not None:
    scaled = top_p_mask(scaled, top_p)
  if min_p is not None:
    scaled = min_p_mask(scaled, min_p)
  argmax_only = jnp.where(jnp.arange(logits.shape[-1]) == greedy(logits)[..., None], logits,
                          -jnp.inf)
  return jnp.where(hot, scaled, argmax_only)


def sample(key, logits, temperature=1.0, top_k=None, top_p=None, min_p=None, allowed=None):
  """One token id per row of logits [..., V]; temperature 0 means greedy. `allowed` (bool
  [..., V] or None): only those tokens can be drawn, the others leave before temperature."""
  logits = allowed_mask(jnp.asarray(logits), allowed)

  def draw(logits):
    filtered = filter_logits(logits, temperature, top_k, top_p, min_p)
    return jax.random.categorical(key, filtered, axis=-1).astype(jnp.int32)

  return jax.lax.cond(jnp.asarray(temperature) > 0, draw,
                      lambda z: greedy(z).astype(jnp.int32), logits)


def candidate_set(logits, temperature=1.0, top_k=None, top_p=None, min_p=None) -> np.ndarray:
  """The token ids `sample` can return for logits [V], most likely first."""
  logits = np.asarray(logits)
  if logits.ndim != 1:
    raise ValueError(f"candidate_set: expected logits of shape [V], got {logits.shape}.")
  filtered = np.asarray(filter_logits(logits, temperature, top_k, top_p, min_p))
  order = np.argsort(-filtered, kind="stable")
  return order[np.isfinite(filtered[order])]


# Top-k and top-p need the k-th largest value, not a full order: XLA's CPU sort costs about
# 200 ns per element (two argsorts of 8 x 50k logits take 210 ms), while 32 halvings of the
# float32 range by counting cost 6 ms and select the same tokens.


def _sortable(x):
  """int32 keys in the order of the float32 values (-0.0 and 0.0 equal, -inf lowest)."""
  x = jnp.where(x == 0, 0.0, x).astype(jnp.float32)
  i = jax.lax.bitcast_convert_type(x, jnp.int32)
  return jnp.where(i < 0, i ^ jnp.int32(0x7FFFFFFF), i)  # negative floats count down


def _largest_threshold(key_V, holds):
  """The largest t among int32 keys with holds(t), for holds true at min(key) and monotone
  (true up to some t, false after): bisection, 32 steps for 2^32 candidates."""
  lo, hi = jnp.min(key_V, axis=-1), jnp.max(key_V, axis=-1)

  def halve(_, bounds):
    lo, hi = bounds
    mid = (lo >> 1) + (hi >> 1) + ((lo | hi) & 1)  # ceil((lo + hi) / 2) without overflow
    ok = holds(mid)
    return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid - 1)

  lo, _ = jax.lax.fori_loop(0, 32, halve, (lo, hi))
  return lo


def _check_number(name, value, low=None, high=None):
  """Checks Python numbers only: traced values cannot be inspected without breaking jit."""
  if not isinstance(value, (int, float)):
    return
  if (low is not None and value < low) or (high is not None and value > high):
    bounds = f"[{low}, {'inf' if high is None else high}]"
    raise ValueError(f"{name}={value}: expected a value in {bounds}.")
