"""Token embedding: row lookup in a V x D table, which equals one-hot(ids) @ table."""

import jax
import jax.numpy as jnp
from flax import nnx


class Embedding(nnx.Module):
  def __init__(self, num: int, dim: int, *, rngs: nnx.Rngs, std: float = 0.02):
    self.embedding = nnx.Param(std * jax.random.normal(rngs.params(), (num, dim), jnp.float32))

  def __call__(self, ids_BxL):
    return jnp.take(self.embedding[...], ids_BxL, axis=0)

  def attend(self, x_BxLxD):
    """The tied output head: logits = x @ table^T."""
    table_VxD = self.embedding[...].astype(x_BxLxD.dtype)
    return x_BxLxD @ table_VxD.T
