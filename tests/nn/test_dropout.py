import jax
import jax.numpy as jnp
import numpy as np

from research.nn import dropout


def test_inverted_dropout_keeps_the_expected_activation():
  x = jnp.full((200_000,), 2.0)
  y = dropout.dropout(x, 0.3, jax.random.key(0))
  zeros = float(jnp.mean(y == 0))
  assert abs(zeros - 0.3) < 0.005  # binomial std ~0.001
  np.testing.assert_allclose(float(jnp.mean(y)), 2.0, rtol=0.01)
  np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, 2.0 / 0.7], rtol=1e-6)


def test_no_key_means_evaluation_and_identity():
  x = jax.random.normal(jax.random.key(0), (5, 7))
  assert dropout.dropout(x, 0.5, None) is x
  assert dropout.dropout(x, 0.0, jax.random.key(1)) is x


def test_site_keys_differ_per_site_and_are_deterministic():
  key = jax.random.key(3)
  a, b = dropout.site_key(key, 0, 1), dropout.site_key(key, 0, 2)
  assert not np.array_equal(jax.random.key_data(a), jax.random.key_data(b))
  assert np.array_equal(jax.random.key_data(a), jax.random.key_data(dropout.site_key(key, 0, 1)))
  assert dropout.site_key(None, 0) is None
