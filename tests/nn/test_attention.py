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


def _heads(t_BxLxHxK):
  return t_BxLxHxK.transpose(0, 2, 1, 3)  # B x L x H x K <-> B x H x L x K


def test_scaled_dot_product_attention_matches_the_per_head_loop():
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (2, 7, 6, 4))
  k = jax.random.normal(keys[1], (2, 7, 2, 4))
  v = jax.random.normal(keys[2], (2, 7, 2, 4))
  pos = jnp.broadcast_to(jnp.arange(7), (2, 7))
  ours = _heads(attention.scaled_dot_product_attention(
      _heads(q), attention.repeat_kv(_heads(k), 6), attention.repeat_kv(_heads(v), 6),
      attention.causal_mask(pos, pos)))
  for b in range(2):
    np.testing.assert_allclose(ours[b], _reference(*(np.asarray(t[b]) for t in (q, k, v))),
                               rtol=1e-5, atol=1e-5)


def test_split_heads_cuts_the_width_into_contiguous_heads_and_merge_undoes_it():
  x = jnp.arange(2 * 3 * 12, dtype=jnp.float32).reshape(2, 3, 12)
  heads = attention.split_heads(x, 4)
  assert heads.shape == (2, 4, 3, 3)
  np.testing.assert_array_equal(heads[1, 2, 0], x[1, 0, 6:9])  # head 2 = features 6..8
  np.testing.assert_array_equal(attention.merge_heads(heads), x)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
@pytest.mark.parametrize("position", ["rope", "alibi", "learned"])
def test_explicit_and_xla_attention_agree(position, kernels):
  x = jax.random.normal(jax.random.key(1), (2, 9, 24))
  pos = jnp.broadcast_to(jnp.arange(9), (2, 9))
  explicit = attention.Attention(_config(position=position, kernels=kernels),
                                 rngs=nnx.Rngs(0))
  xla = attention.Attention(_config(position=position, attention="xla"), rngs=nnx.Rngs(0))
  np.testing.assert_allclose(explicit(x, pos)[0], xla(x, pos)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_grouped_kv_heads_equal_multi_head_with_repeated_kv_weights(kernels):
  gqa = attention.Attention(_config(position="none", kernels=kernels), rngs=nnx.Rngs(0))
  mha = attention.Attention(_config(position="none", num_kv_heads=6, kernels=kernels),
                            rngs=nnx.Rngs(1))
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
  q = jax.random.normal(jax.random.key(3), (1, 2, 6, 8))  # B x H x L x K
  k = jax.random.normal(jax.random.key(4), (1, 2, 6, 8))
  pos = jnp.arange(6)[None]
  att = attention.attention_weights(q, k, attention.causal_mask(pos, pos))[0, 0]
  np.testing.assert_allclose(jnp.sum(att, -1), 1.0, rtol=1e-6)
  assert float(jnp.max(jnp.abs(jnp.triu(att, 1)))) == 0.0


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_a_padding_mask_hides_padded_keys_in_both_directions(kernels):
  """Bidirectional: a query sees later real keys, and nothing at padded slots matters."""
  layer = attention.Attention(_config(position="none", kernels=kernels, init_std=0.3),
                              rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(5), (1, 6, 24))
  pos = jnp.arange(6)[None]
  mask = attention.padding_mask(jnp.arange(6)[None] < 4, 6)  # keys 4, 5 are padding
  y = layer(x, pos, mask_BxLxS=mask)[0]
  changed = x.at[:, 4:].set(jax.random.normal(jax.random.key(6), (1, 2, 24)))
  np.testing.assert_allclose(layer(changed, pos, mask_BxLxS=mask)[0][:, :4], y[:, :4],
                             rtol=1e-6, atol=1e-6)
  later = x.at[:, 3].set(0.0)  # a real key after query 0: bidirectional, so query 0 moves
  assert float(jnp.max(jnp.abs(layer(later, pos, mask_BxLxS=mask)[0][:, 0] - y[:, 0]))) > 1e-3


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_non_causal_attention_is_the_all_true_mask(kernels):
  layer = attention.Attention(_config(causal=False, kernels=kernels), rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(7), (2, 5, 24))
  pos = jnp.broadcast_to(jnp.arange(5), (2, 5))
  all_true = jnp.ones((2, 5, 5), bool)
  np.testing.assert_allclose(layer(x, pos)[0], layer(x, pos, mask_BxLxS=all_true)[0],
                             rtol=1e-6, atol=1e-6)
  causal = attention.Attention(_config(kernels=kernels), rngs=nnx.Rngs(0))
  assert float(jnp.max(jnp.abs(causal(x, pos)[0] - layer(x, pos)[0]))) > 1e-4
