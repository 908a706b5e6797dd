"""Multi-head attention as the notebook draws it.

  Q = x W_Q, K = x W_K, V = x W_V             each split into heads of width K (= d_k)
  head_h = softmax(Q_h K_h^T / sqrt(d_k) + bias + mask) V_h
  out = concat(head_1, ..., head_H) W_O

The mask is causal (a decoder: -inf above the diagonal) unless one is given, e.g. a padding
mask for an encoder; G <= H key/value heads are shared by H / G query heads each (grouped
query attention); RoPE rotates Q and K, ALiBi adds a bias; dropout acts on the weights; a KV
cache keeps past keys and values for decoding (a batch's rows left-padded to one length put
their padding at negative positions: every row writes the same slot, no real query sees a
pad). With kernels="fused" (or attention="xla") the same steps run on B x L x H x K with the
fast forms of `research.nn.fused`.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import dropout as dropout_lib
from research.nn import fused
from research.nn import positions as positions_lib


def causal_mask(q_positions_BxL, k_positions_BxS):
  """True where query t may look at key s: s <= t (and never at a future slot).

  Left padding sits at negative positions: a real query (t >= 0) never sees it, and a padding
  query sees only the padding before it, so its row of weights stays finite."""
  causal_BxLxS = k_positions_BxS[:, None, :] <= q_positions_BxL[:, :, None]  # s <= t
  real_key_BxS, pad_query_BxL = k_positions_BxS >= 0, q_positions_BxL < 0
  return causal_BxLxS & (real_key_BxS[:, None, :] | pad_query_BxL[:, :, None])


def padding_mask(valid_BxS, num_queries: int):
  """Bidirectional: every query sees every real key (valid True), none of the padding."""
  b, s = valid_BxS.shape
  return jnp.broadcast_to(valid_BxS[:, None, :].astype(bool), (b, num_queries, s))


def split_heads(x_BxLxD, num_heads: int):
  """B x L x D -> B x H x L x K: head h holds features h*K .. (h+1)*K - 1."""
  b, l, d = x_BxLxD.shape
  return x_BxLxD.reshape(b, l, num_heads, d // num_heads).transpose(0, 2, 1, 3)


def merge_heads(x_BxHxLxK):
  """B x H x L x K -> B x L x (H K): concat(head_1, ..., head_H)."""
  b, h, l, k = x_BxHxLxK.shape
  return x_BxHxLxK.transpose(0, 2, 1, 3).reshape(b, l, h * k)


def repeat_kv(x_BxGxSxK, num_heads: int):
  """Each of G key/value heads serves H / G query heads: B x G x S x K -> B x H x S x K."""
  return jnp.repeat(x_BxGxSxK, num_heads // x_BxGxSxK.shape[1], axis=1)


def attention_weights(q_BxHxLxK, k_BxHxSxK, mask_BxLxS, bias_BxHxLxS=None, scale=None):
  """softmax(q k^T * scale + bias), -inf where the mask is False: B x H x L x S."""
  scale = 1.0 / math.sqrt(q_BxHxLxK.shape[-1]) if scale is None else scale  # 1 / sqrt(d_k)
  scores_BxHxLxS = jnp.einsum("bhlk,bhsk->bhls", q_BxHxLxK, k_BxHxSxK,
                              preferred_element_type=jnp.float32) * scale  # q k^T / sqrt(d_k)
  if bias_BxHxLxS is not None:
    scores_BxHxLxS = scores_BxHxLxS + bias_BxHxLxS  # + bias (ALiBi)
  scores_BxHxLxS = jnp.where(mask_BxLxS[:, None], scores_BxHxLxS, -jnp.inf)  # + mask
  return jax.nn.softmax(scores_BxHxLxS, axis=-1)


def scaled_dot_product_attention(q_BxHxLxK, k_BxHxSxK, v_BxHxSxK, mask_BxLxS, bias=None,
                                 rate=0.0, key=None):
  """softmax(q k^T / sqrt(d_k) + bias + mask) v, dropout on the weights: B x H x L x K."""
  att_BxHxLxS = attention_weights(q_BxHxLxK, k_BxHxSxK, mask_BxLxS, bias)
  att_BxHxLxS = dropout_lib.dropout(att_BxHxLxS, rate, key)
  return jnp.einsum("bhls,bhsk->bhlk", att_BxHxLxS.astype(v_BxHxSxK.dtype), v_BxHxSxK)


def write_cache(cache, k_BxLxGxK, v_BxLxGxK, start):
  """Writes this step's keys and values at slots start.. of the B x S x G x K cache; returns
  {"key", "value"}."""
  k = jax.lax.dynamic_update_slice_in_dim(cache["key"], k_BxLxGxK.astype(cache["key"].dtype),
                                          start, axis=1)
  v = jax.lax.dynamic_update_slice_in_dim(cache["value"],
                                          v_BxLxGxK.astype(cache["value"].dtype), start, axis=1)
  return {"key": k, "value": v}


class Attention(nnx.Module):
  def __init__(self, config, *, rngs: nnx.Rngs):
    d, h, g, kw = config.width, config.num_heads, config.kv_heads, config.head
    init = nnx.initializers.normal(config.init_std)
    out_init = nnx.initializers.normal(config.init_std / math.sqrt(2 * config.num_layers))
    self.num_heads, self.num_kv_heads, self.head_width = h, g, kw
    self.position, self.rope_base = config.position, config.rope_base
    self.rate, self.impl, self.kernels = config.dropout, config.attention, config.kernels
    self.causal = config.causal
    self.query = nnx.Linear(d, h * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.key = nnx.Linear(d, g * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.value = nnx.Linear(d, g * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.out = nnx.Linear(h * kw, d, use_bias=config.out_bias, kernel_init=out_init, rngs=rngs)

  def __call__(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None, mask_BxLxS=None):
    """Returns (y_BxLxD, new_cache). A cache is {"key": BxSxGxK, "value": BxSxGxK, "index":
    the first slot to write, "offset": B} (see `transformer.init_cache`): row b's slot s holds
    position s - offset_b, so left padding has negative positions; keys at later slots are
    masked out by causality. An explicit `mask_BxLxS` (True: may attend) replaces the causal
    one."""
    if self.kernels == "fused" or self.impl == "xla":
      return self._fused(x_BxLxD, positions_BxL, cache, dropout_key, mask_BxLxS)
    h, g = self.num_heads, self.num_kv_heads
    q_BxHxLxK = split_heads(self.query(x_BxLxD), h)  # Q = x W_Q, split into H heads
    k_BxGxLxK = split_heads(self.key(x_BxLxD), g)  # K = x W_K
    v_BxGxLxK = split_heads(self.value(x_BxLxD), g)  # V = x W_V
    if self.position == "rope":
      cos, sin = positions_lib.rope_angles(positions_BxL, self.head_width, self.rope_base)
      cos, sin = cos.transpose(0, 2, 1, 3), sin.transpose(0, 2, 1, 3)  # B x 1 x L x K
      q_BxHxLxK = positions_lib.apply_rope(q_BxHxLxK, cos, sin)
      k_BxGxLxK = positions_lib.apply_rope(k_BxGxLxK, cos, sin)
    k_positions_BxS = positions_BxL
    if cache is not None:  # the cache is laid out B x S x G x K, as the fused form keeps it
      k_positions_BxS = slot_positions(cache)
      cache = write_cache(cache, k_BxGxLxK.transpose(0, 2, 1, 3),
                          v_BxGxLxK.transpose(0, 2, 1, 3), cache["index"])
      k_BxGxLxK = cache["key"].transpose(0, 2, 1, 3).astype(q_BxHxLxK.dtype)
      v_BxGxLxK = cache["value"].transpose(0, 2, 1, 3).astype(q_BxHxLxK.dtype)
    mask_BxLxS = self._mask(positions_BxL, k_positions_BxS, mask_BxLxS)
    y_BxHxLxK = scaled_dot_product_attention(
        q_BxHxLxK, repeat_kv(k_BxGxLxK, h), repeat_kv(v_BxGxLxK, h), mask_BxLxS,
        self._bias(positions_BxL, k_positions_BxS), self.rate, dropout_key)
    return self.out(merge_heads(y_BxHxLxK)), cache  # concat(heads) W_O

  def _mask(self, positions_BxL, k_positions_BxS, mask_BxLxS):
    if mask_BxLxS is not None:
      return mask_BxLxS
    if not self.causal:
      return jnp.ones((positions_BxL.shape[0], positions_BxL.shape[1],
                       k_positions_BxS.shape[1]), bool)
    return causal_mask(positions_BxL, k_positions_BxS)

  def _bias(self, positions_BxL, k_positions_BxS):
    if self.position != "alibi":
      return None
    return positions_lib.alibi_bias(positions_lib.alibi_slopes(self.num_heads),
                                    positions_BxL, k_positions_BxS)

  def _fused(self, x_BxLxD, positions_BxL, cache, dropout_key, mask_BxLxS):
    """The same steps on B x L x H x K with the fast forms: tokens-first linears, grouped
    heads read in place (no repeat), the custom-gradient softmax attention."""
    b, l, _ = x_BxLxD.shape
    q = fused.tokens_first(self.query, x_BxLxD).reshape(b, l, self.num_heads, self.head_width)
    k = fused.tokens_first(self.key, x_BxLxD).reshape(b, l, self.num_kv_heads, self.head_width)
    v = fused.tokens_first(self.value, x_BxLxD).reshape(b, l, self.num_kv_heads,
                                                        self.head_width)
    if self.position == "rope":
      cos, sin = positions_lib.rope_angles(positions_BxL, self.head_width, self.rope_base)
      q, k = positions_lib.apply_rope(q, cos, sin), positions_lib.apply_rope(k, cos, sin)
    k_positions_BxS = positions_BxL
    if cache is not None:
      k_positions_BxS = slot_positions(cache)
      cache = write_cache(cache, k, v, cache["index"])
      k, v = cache["key"], cache["value"]
    mask_BxLxS = self._mask(positions_BxL, k_positions_BxS, mask_BxLxS)
    bias = self._bias(positions_BxL, k_positions_BxS)
    if self.impl == "xla" and (dropout_key is None or self.rate == 0.0):
      y = fused.xla_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask_BxLxS, bias)
    else:
      y = fused.grouped_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask_BxLxS, bias,
                                  self.rate, dropout_key)
    return fused.tokens_first(self.out, y.reshape(b, l, -1)), cache


def slot_positions(cache):
  """B x S: the position each cache slot holds, s - offset_b. A batch decodes in step (every
  row writes the same slot), so a row left-padded by offset_b tokens starts there at 0."""
  s = cache["key"].shape[1]
  return jnp.arange(s, dtype=jnp.int32)[None, :] - cache["offset"][:, None]
