"""Causal self-attention, written out as the notebook draws it, with grouped KV heads,
RoPE or ALiBi, dropout on the weights, an optional KV cache, and a switch to
`jax.nn.dot_product_attention`.

  q = x W_Q, k = x W_K, v = x W_V            (H query heads, G <= H key/value heads of width K)
  att = softmax(q k^T / sqrt(K) + bias, -inf above the diagonal)
  out = (att v) W_O
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import dropout as dropout_lib
from research.nn import ffn
from research.nn import positions as positions_lib


def causal_mask(q_positions_BxL, k_positions_BxS):
  """True where query t may look at key s: s <= t (and never at a future slot)."""
  return k_positions_BxS[:, None, :] <= q_positions_BxL[:, :, None]


@jax.custom_vjp
def masked_softmax(scores, mask):
  """softmax over the last axis with -inf where `mask` is False."""
  return jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)


def _masked_softmax_forward(scores, mask):
  p = masked_softmax(scores, mask)
  return p, p


def _masked_softmax_backward(p, g):
  # dS = p (g - sum(g p)); masked entries have p = 0, so their gradient is 0 without a select.
  return p * (g - jnp.sum(g * p, axis=-1, keepdims=True)), None


masked_softmax.defvjp(_masked_softmax_forward, _masked_softmax_backward)


def attention_weights(q_BxLxHxK, k_BxSxGxK, mask_BxLxS, bias_BxHxLxS=None, scale=None):
  """softmax(q k^T * scale + bias) with -inf where the mask is False: B x G x R x L x S."""
  b, l, h, kw = q_BxLxHxK.shape
  g = k_BxSxGxK.shape[2]
  scale = 1.0 / math.sqrt(kw) if scale is None else scale
  q_BxLxGxRxK = (q_BxLxHxK * scale).reshape(b, l, g, h // g, kw)  # scale q: L x K, not L x S
  scores = jnp.einsum("blgrk,bsgk->bgrls", q_BxLxGxRxK, k_BxSxGxK,
                      preferred_element_type=jnp.float32)
  if bias_BxHxLxS is not None:
    scores = scores + bias_BxHxLxS.reshape(b, g, h // g, l, -1)
  return masked_softmax(scores, mask_BxLxS[:, None, None])


@jax.custom_vjp
def softmax_attention(q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS):
  """softmax(q k^T, -inf where `mask` is False) v for the R query heads of each of G groups
  (q already scaled): B x L x G x R x K."""
  return _softmax_attention_forward(q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS)[0]


def _softmax_attention_forward(q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS):
  scores = jnp.einsum("blgrk,bsgk->bgrls", q_BxLxGxRxK, k_BxSxGxK,
                      preferred_element_type=jnp.float32)
  scores = jnp.where(mask_BxLxS[:, None, None], scores, -jnp.inf)
  e_BxGxRxLxS = jnp.exp(scores - jnp.max(scores, axis=-1, keepdims=True))  # unnormalised
  total_BxLxGxR = jnp.einsum("bgrls->blgr", e_BxGxRxLxS)
  # out = (e v) / sum(e): the division runs over L x K, not L x S
  out = jnp.einsum("bgrls,bsgk->blgrk", e_BxGxRxLxS.astype(v_BxSxGxK.dtype), v_BxSxGxK,
                   preferred_element_type=jnp.float32) / total_BxLxGxR[..., None]
  out = out.astype(v_BxSxGxK.dtype)
  return out, (q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, e_BxGxRxLxS, total_BxLxGxR, out)


def _softmax_attention_backward(residuals, g_BxLxGxRxK):
  """With p = e / sum(e) and D = sum_k(g o) per row (FlashAttention's identity, D =
  sum_s(p dP)): dS = p (dP - D) = e (dP - D) / sum(e), with no reduction over L x S."""
  q, k, v, e_BxGxRxLxS, total_BxLxGxR, out = residuals
  g_over_total = g_BxLxGxRxK.astype(jnp.float32) / total_BxLxGxR[..., None]  # g / sum(e)
  dv = jnp.einsum("bgrls,blgrk->bsgk", e_BxGxRxLxS, g_over_total)
  dp_over_total = jnp.einsum("blgrk,bsgk->bgrls", g_over_total, v,
                             preferred_element_type=jnp.float32)
  d_over_total = jnp.einsum("blgrk,blgrk->bgrl", g_over_total, out)
  ds_BxGxRxLxS = e_BxGxRxLxS * (dp_over_total - d_over_total[..., None])
  dq = jnp.einsum("bgrls,bsgk->blgrk", ds_BxGxRxLxS, k, preferred_element_type=jnp.float32)
  dk = jnp.einsum("bgrls,blgrk->bsgk", ds_BxGxRxLxS, q, preferred_element_type=jnp.float32)
  return dq.astype(q.dtype), dk.astype(k.dtype), dv.astype(v.dtype), None


softmax_attention.defvjp(_softmax_attention_forward, _softmax_attention_backward)


def explicit_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS, bias=None, rate=0.0,
                       key=None):
  b, l, h, kw = q_BxLxHxK.shape
  if bias is None and (rate == 0.0 or key is None):
    g = k_BxSxGxK.shape[2]
    q_BxLxGxRxK = (q_BxLxHxK * (1.0 / math.sqrt(kw))).reshape(b, l, g, h // g, kw)
    return softmax_attention(q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS).reshape(
        b, l, h, kw)
  att_BxGxRxLxS = attention_weights(q_BxLxHxK, k_BxSxGxK, mask_BxLxS, bias)
  att_BxGxRxLxS = dropout_lib.dropout(att_BxGxRxLxS, rate, key)
  out = jnp.einsum("bgrls,bsgk->blgrk", att_BxGxRxLxS.astype(v_BxSxGxK.dtype), v_BxSxGxK)
  return out.reshape(b, l, h, kw)


def xla_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS, bias=None):
  """The same maths through jax.nn.dot_product_attention (no attention dropout)."""
  return jax.nn.dot_product_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, bias=bias,
                                      mask=mask_BxLxS[:, None])


class Attention(nnx.Module):
  def __init__(self, config, *, rngs: nnx.Rngs):
    d, h, g, kw = config.width, config.num_heads, config.kv_heads, config.head
    init = nnx.initializers.normal(config.init_std)
    out_init = nnx.initializers.normal(config.init_std / math.sqrt(2 * config.num_layers))
    self.num_heads, self.num_kv_heads, self.head_width = h, g, kw
    self.position, self.rope_base = config.position, config.rope_base
    self.rate, self.impl = config.dropout, config.attention
    self.query = nnx.Linear(d, h * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.key = nnx.Linear(d, g * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.value = nnx.Linear(d, g * kw, use_bias=config.qkv_bias, kernel_init=init, rngs=rngs)
    self.out = nnx.Linear(h * kw, d, use_bias=config.out_bias, kernel_init=out_init, rngs=rngs)

  def __call__(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None):
    """Returns (y_BxLxD, new_cache). A cache is {"key": BxSxGxK, "value": BxSxGxK} with
    slots written at `positions`; keys at later slots are masked out by causality."""
    b, l, _ = x_BxLxD.shape
    q = ffn.tokens_first(self.query, x_BxLxD).reshape(b, l, self.num_heads, self.head_width)
    k = ffn.tokens_first(self.key, x_BxLxD).reshape(b, l, self.num_kv_heads, self.head_width)
    v = ffn.tokens_first(self.value, x_BxLxD).reshape(b, l, self.num_kv_heads, self.head_width)
    if self.position == "rope":
      cos, sin = positions_lib.rope_angles(positions_BxL, self.head_width, self.rope_base)
      q, k = positions_lib.apply_rope(q, cos, sin), positions_lib.apply_rope(k, cos, sin)
    if cache is None:
      k_positions_BxS = positions_BxL
    else:
      start = positions_BxL[0, 0]  # a batch decodes in step: every row writes the same slots
      k = jax.lax.dynamic_update_slice_in_dim(cache["key"], k.astype(cache["key"].dtype),
                                              start, axis=1)
      v = jax.lax.dynamic_update_slice_in_dim(cache["value"], v.astype(cache["value"].dtype),
                                              start, axis=1)
      cache = {"key": k, "value": v}
      k_positions_BxS = jnp.broadcast_to(jnp.arange(k.shape[1]), (b, k.shape[1]))
    mask_BxLxS = causal_mask(positions_BxL, k_positions_BxS)
    bias = None
    if self.position == "alibi":
      bias = positions_lib.alibi_bias(positions_lib.alibi_slopes(self.num_heads),
                                      positions_BxL, k_positions_BxS)
    if self.impl == "xla" and (dropout_key is None or self.rate == 0.0):
      y = xla_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask_BxLxS, bias)
    else:
      y = explicit_attention(q, k.astype(q.dtype), v.astype(q.dtype), mask_BxLxS, bias,
                             self.rate, dropout_key)
    return ffn.tokens_first(self.out, y.reshape(b, l, -1)), cache
