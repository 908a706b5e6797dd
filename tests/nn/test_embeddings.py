import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.nn import embeddings


def test_lookup_equals_one_hot_times_matrix():
  embed = embeddings.Embedding(11, 5, rngs=nnx.Rngs(0))
  ids_BxL = jax.random.randint(jax.random.key(1), (3, 7), 0, 11)
  one_hot_BxLxV = jax.nn.one_hot(ids_BxL, 11)
  expected = one_hot_BxLxV @ embed.embedding[...]
  np.testing.assert_allclose(embed(ids_BxL), expected, rtol=0, atol=1e-7)


def test_tied_head_is_x_times_table_transposed():
  embed = embeddings.Embedding(11, 5, rngs=nnx.Rngs(0))
  x_BxLxD = jax.random.normal(jax.random.key(2), (2, 3, 5))
  np.testing.assert_allclose(embed.attend(x_BxLxD), x_BxLxD @ embed.embedding[...].T,
                             rtol=1e-6, atol=1e-6)
  assert embed.attend(x_BxLxD).shape == (2, 3, 11)
  assert jnp.issubdtype(embed.embedding[...].dtype, jnp.floating)
