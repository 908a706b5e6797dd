"""Inverted dropout: zero each unit with probability p and scale the rest by 1/(1-p), so the
expected activation is unchanged; with no key (evaluation) it is the identity."""

import jax
import jax.numpy as jnp


def dropout(x, rate: float, key=None):
  if key is None or rate == 0.0:
    return x
  keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
  return jnp.where(keep, x / (1.0 - rate), jnp.zeros_like(x))  # E[y] = (1-p) x/(1-p) = x


def site_key(key, *path: int):
  """A key for one dropout site, derived from the step's key; None stays None (eval)."""
  if key is None:
    return None
  for index in path:
    key = jax.random.fold_in(key, index)
  return key
