import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import attention
from research.nn import config as config_lib


def _config(**changes):
  base = dict(vocab_size=10, num_layers=1, width=24, num_heads=6, num_kv_heads=2,
              max_length=16, position="rope")
  base.update(changes)
  return config_lib.ModelConfig(**base)


def _reference(q_LxHxK, k_LxGxK, v_LxGxK):
  """The notebook's loop: one head at a time, softmax(q k^T / sqrt(K) - inf above diag) v."""
  length, heads, width = q_LxHxK.shape
  groups = k_LxGxK.shape[1]
  out = np.zeros_like(q_LxHxK)
  for h in range(heads):
    g = h // (heads // groups)
    scores = q_LxHxK[:, h] @ k_LxGxK[:, g].T / np.sqrt(width)
    scores[np.triu_indices(length, 1)] = -np.inf
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out[:, h] = weights @ v_LxGxK[:, g]
  return out


def test_explicit_attention_matches_the_per_head_loop():
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (2, 7, 6, 4))
  k = jax.random.normal(keys[1], (2, 7, 2, 4))
  v = jax.random.normal(keys[2], (2, 7, 2, 4))
  pos = jnp.broadcast_to(jnp.arange(7), (2, 7))
  ours = attention.explicit_attention(q, k, v, attention.causal_mask(pos, pos))
  for b in range(2):
    np.testing.assert_allclose(ours[b], _reference(*(np.asarray(t[b]) for t in (q, k, v))),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("position", ["rope", "alibi", "learned"])
def test_explicit_and_xla_attention_agree(position):
  x = jax.random.normal(jax.random.key(1), (2, 9, 24))
  pos = jnp.broadcast_to(jnp.arange(9), (2, 9))
  explicit = attention.Attention(_config(position=position), rngs=nnx.Rngs(0))
  xla = attention.Attention(_config(position=position, attention="xla"), rngs=nnx.Rngs(0))
  np.testing.assert_allclose(explicit(x, pos)[0], xla(x, pos)[0], rtol=1e-5, atol=1e-5)


def test_grouped_kv_heads_equal_multi_head_with_repeated_kv_weights():
  gqa = attention.Attention(_config(position="none"), rngs=nnx.Rngs(0))
  mha = attention.Attention(_config(position="none", num_kv_heads=6), rngs=nnx.Rngs(1))
  mha.query.kernel[...], mha.out.kernel[...] = gqa.query.kernel[...], gqa.out.kernel[...]
  mha.query.bias[...], mha.out.bias[...] = gqa.query.bias[...], gqa.out.bias[...]
  for name in ("key", "value"):
    src, dst = getattr(gqa, name), getattr(mha, name)
    kernel = src.kernel[...].reshape(24, 2, 1, 4)  # D x G x 1 x K, each group serves 3 heads
    dst.kernel[...] = jnp.repeat(kernel, 3, axis=2).reshape(24, 24)
    dst.bias[...] = jnp.repeat(src.bias[...].reshape(2, 1, 4), 3, axis=1).reshape(24)
  x = jax.random.normal(jax.random.key(2), (1, 5, 24))
  pos = jnp.arange(5)[None]
  np.testing.assert_allclose(gqa(x, pos)[0], mha(x, pos)[0], rtol=1e-5, atol=1e-5)


def test_weights_are_causal_and_sum_to_one():
  q = jax.random.normal(jax.random.key(3), (1, 6, 2, 8))
  k = jax.random.normal(jax.random.key(4), (1, 6, 2, 8))
  pos = jnp.arange(6)[None]
  att = attention.attention_weights(q, k, attention.causal_mask(pos, pos))[0, :, 0]
  np.testing.assert_allclose(jnp.sum(att, -1), 1.0, rtol=1e-6)
  assert float(jnp.max(jnp.abs(jnp.triu(att, 1)))) == 0.0


def test_masked_softmax_gradient_matches_autodiff():
  scores = jax.random.normal(jax.random.key(5), (2, 3, 6, 6))
  mask = jnp.tril(jnp.ones((6, 6), bool))
  g = jax.random.normal(jax.random.key(6), (2, 3, 6, 6))
  plain = lambda s: jax.nn.softmax(jnp.where(mask, s, -jnp.inf), axis=-1)
  ours = jax.vjp(lambda s: attention.masked_softmax(s, mask), scores)[1](g)[0]
  np.testing.assert_allclose(ours, jax.vjp(plain, scores)[1](g)[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(attention.masked_softmax(scores, mask), plain(scores), rtol=1e-6)


def test_softmax_attention_and_its_gradient_match_autodiff_of_the_formula():
  keys = jax.random.split(jax.random.key(7), 4)
  q = jax.random.normal(keys[0], (2, 6, 2, 3, 4))  # B x L x G x R x K
  k = jax.random.normal(keys[1], (2, 6, 2, 4))
  v = jax.random.normal(keys[2], (2, 6, 2, 4))
  g = jax.random.normal(keys[3], (2, 6, 2, 3, 4))
  mask = jnp.broadcast_to(jnp.tril(jnp.ones((6, 6), bool)), (2, 6, 6))

  def plain(q, k, v):
    scores = jnp.einsum("blgrk,bsgk->bgrls", q, k)
    p = jax.nn.softmax(jnp.where(mask[:, None, None], scores, -jnp.inf), axis=-1)
    return jnp.einsum("bgrls,bsgk->blgrk", p, v)

  ours, ours_vjp = jax.vjp(lambda *a: attention.softmax_attention(*a, mask), q, k, v)
  want, want_vjp = jax.vjp(plain, q, k, v)
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-6)
  for ours_grad, want_grad in zip(ours_vjp(g), want_vjp(g)):
    np.testing.assert_allclose(ours_grad, want_grad, rtol=1e-5, atol=1e-5)
