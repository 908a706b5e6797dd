"""Samplers: pure functions on logits [..., V] that compose, jit, and take an explicit key.

Each filter returns the logits with the tokens it drops set to -inf, so filters chain and the
survivors keep their relative probabilities (softmax renormalises over what is left):

  logits = top_p_mask(top_k_mask(apply_temperature(logits, 0.8), 50), 0.95)
  token = jax.random.categorical(key, logits)

`sample` applies them in that order (temperature, top-k, top-p, min-p); temperature 0 is
greedy. Thresholds may be traced values: no Python branch looks at an array's contents.
"""

import jax
import jax.numpy as jnp
import numpy as np


def greedy(logits):
  """The most likely token; ties go to the lower id."""
  return jnp.argmax(logits, axis=-1)


def apply_temperature(logits, temperature):
  """p_i ∝ exp(z_i / T): T > 1 flattens the distribution, T < 1 sharpens it (T > 0)."""
  return logits / temperature


def top_k_mask(logits, k):
  """Keeps exactly the k most likely tokens (ties broken towards the lower id, as argmax)."""
  _check_number("k", k, low=1)
  return jnp.where(_ranks(logits) < k, logits, -jnp.inf)


def top_p_mask(logits, p):
  """Keeps the smallest set of most likely tokens whose probabilities sum to at least p."""
  _check_number("p", p, low=0.0, high=1.0)
  order_V = jnp.argsort(-logits, axis=-1, stable=True)
  probs_sorted = jax.nn.softmax(jnp.take_along_axis(logits, order_V, axis=-1), axis=-1)
  mass_before = jnp.cumsum(probs_sorted, axis=-1) - probs_sorted  # sum of the likelier tokens
  # Token j belongs iff the likelier ones hold < p; the first always belongs. At p = 1 the
  # float cumsum can reach 1 before the tail, and "sum >= 1" means every token.
  keep_sorted = (mass_before < p) | (jnp.arange(logits.shape[-1]) == 0) | (p >= 1.0)
  keep = jnp.take_along_axis(keep_sorted, _inverse(order_V), axis=-1)
  return jnp.where(keep, logits, -jnp.inf)


def min_p_mask(logits, min_p):
  """Drops tokens with p_i < min_p * p_max, i.e. exp(z_i - z_max) < min_p."""
  _check_number("min_p", min_p, low=0.0, high=1.0)
  ratio = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))  # p_i / p_max
  return jnp.where(ratio >= min_p, logits, -jnp.inf)


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
  greedy_only = jnp.where(_ranks(logits) == 0, logits, -jnp.inf)
  return jnp.where(hot, scaled, greedy_only)


def sample(key, logits, temperature=1.0, top_k=None, top_p=None, min_p=None):
  """One token id per row of logits [..., V]; temperature 0 means greedy."""
  filtered = filter_logits(logits, temperature, top_k, top_p, min_p)
  sampled = jax.random.categorical(key, filtered, axis=-1)
  return jnp.where(jnp.asarray(temperature) > 0, sampled, greedy(logits))


def candidate_set(logits, temperature=1.0, top_k=None, top_p=None, min_p=None) -> np.ndarray:
  """The token ids `sample` can return for logits [V], most likely first."""
  logits = np.asarray(logits)
  if logits.ndim != 1:
    raise ValueError(f"candidate_set: expected logits of shape [V], got {logits.shape}.")
  filtered = np.asarray(filter_logits(logits, temperature, top_k, top_p, min_p))
  order = np.argsort(-filtered, kind="stable")
  return order[np.isfinite(filtered[order])]


def _ranks(logits):
  """Rank of each token by descending logit (0 = most likely), ties to the lower id."""
  return _inverse(jnp.argsort(-logits, axis=-1, stable=True))


def _inverse(permutation):
  return jnp.argsort(permutation, axis=-1)


def _check_number(name, value, low=None, high=None):
  """Checks Python numbers only: traced values cannot be inspected without breaking jit."""
  if not isinstance(value, (int, float)):
    return
  if (low is not None and value < low) or (high is not None and value > high):
    bounds = f"[{low}, {'inf' if high is None else high}]"
    raise ValueError(f"{name}={value}: expected a value in {bounds}.")
