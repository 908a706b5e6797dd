"""The fast forms, each beside the readable one it replaces (named in its docstring) and proven
equal to it, forward and gradient, by tests/nn/test_fused.py. Nothing here is needed to
understand the book; everything here is there for speed or memory. `ModelConfig.kernels`
picks these ("fused", the default) or the notebook forms ("notebook"); BENCHMARKS.md and
experiments/bench_gpt.py measure what they buy.

  tokens_first             twin: layer(x)                         Linear on (B*L) x D
  gelu_saved_slope         twin: activations.gelu(x, False)       the slope saved, not recomputed
  layer_norm               twin: norms.layer_norm                 a two-mean backward pass
  masked_softmax           twin: softmax(where(mask, s, -inf))    p (g - sum(g p)) backward
  softmax_attention        twin: attention.scaled_dot_product_attention (grouped heads)
  grouped_attention        twin: the same, with bias and dropout; picks the kernels above
  xla_attention            twin: the same, through jax.nn.dot_product_attention
  recomputed_block         twin: transformer.Block                the backward pass recomputes it
  chunked_cross_entropy    twin: losses.cross_entropy             a chunk of logits at a time
  retain_freed_memory      (no twin: an allocator setting for the jitted step's scratch space)
  quantized_matmul         twin: quantized.readable_matmul        GGUF blocks, a C++ kernel
                           (proven equal by tests/nn/test_quantized.py)
"""

import ctypes
import ctypes.util
import functools
import math
import sys

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import dropout as dropout_lib
from research.nn import quantized


def tokens_first(layer, x_BxLxD):
  """Twin: `layer(x_BxLxD)`. Applies the Linear to x viewed as (B*L) x D, so that the weight
  gradient contracts one axis: with two, (b, l), XLA's CPU backend transposes the whole
  B x L x F gradient first."""
  y = layer(x_BxLxD.reshape(-1, x_BxLxD.shape[-1]))
  return y.reshape(*x_BxLxD.shape[:-1], y.shape[-1])


@jax.custom_vjp
def gelu_saved_slope(x):
  """Twin: `activations.gelu(x, approximate=False)`, x Phi(x). The forward pass saves the
  derivative Phi(x) + x phi(x), so the backward pass is one multiply instead of autodiff of
  erf, whose recomputed pieces XLA fuses into a strided loop with the weight-gradient
  transpose."""
  return _gelu_forward(x)[0]


def _gelu_forward(x):
  # Phi(x) through erf, as PyTorch computes it; 1 + erf(x) loses relative (not absolute,
  # < 1e-7) accuracy in the far left tail, where gelu(x) ~ 0.
  cdf = 0.5 * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))
  pdf = jnp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))  # phi(x)
  return x * cdf, cdf + x * pdf  # gelu(x), gelu'(x)


def _gelu_backward(slope, g):
  return (g * slope,)


gelu_saved_slope.defvjp(_gelu_forward, _gelu_backward)


def layer_norm(x, scale, bias, eps):
  """Twin: `norms.layer_norm`, (x - mean) / sqrt(var + eps) * scale + bias. Its backward pass
  is two row means (below) instead of autodiff's chain of reductions and broadcasts."""
  if bias is None:
    return _layer_norm(x, scale, jnp.zeros_like(scale), eps)
  return _layer_norm(x, scale, bias, eps)


def _normalise(x, eps):
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  centred = x32 - mean
  rstd = jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + eps)
  return centred * rstd, rstd  # x_hat, 1 / sqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x, scale, bias, eps):
  x_hat, _ = _normalise(x, eps)
  return (x_hat * scale + bias).astype(x.dtype)


def _layer_norm_forward(x, scale, bias, eps):
  x_hat, rstd = _normalise(x, eps)
  return (x_hat * scale + bias).astype(x.dtype), (x_hat, rstd, scale, bias)


def _layer_norm_backward(eps, residuals, g):
  """dx = rstd (gs - mean(gs) - x_hat mean(gs x_hat)), gs = g * scale."""
  del eps
  x_hat, rstd, scale, bias = residuals
  g32 = g.astype(jnp.float32)
  gs = g32 * scale
  dx = rstd * (gs - jnp.mean(gs, axis=-1, keepdims=True)
               - x_hat * jnp.mean(gs * x_hat, axis=-1, keepdims=True))
  rows = tuple(range(g.ndim - 1))
  return (dx.astype(g.dtype), jnp.sum(g32 * x_hat, axis=rows).astype(scale.dtype),
          jnp.sum(g32, axis=rows).astype(bias.dtype))


_layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


@jax.custom_vjp
def masked_softmax(scores, mask):
  """Twin: `jax.nn.softmax(jnp.where(mask, scores, -inf), axis=-1)`. Its backward pass is
  p (g - sum(g p)) on the saved p: masked entries have p = 0, so no select is differentiated."""
  return jax.nn.softmax(jnp.where(mask, scores, -jnp.inf), axis=-1)


def _masked_softmax_forward(scores, mask):
  p = masked_softmax(scores, mask)
  return p, p


def _masked_softmax_backward(p, g):
  return p * (g - jnp.sum(g * p, axis=-1, keepdims=True)), None  # dS = p (g - sum(g p))


masked_softmax.defvjp(_masked_softmax_forward, _masked_softmax_backward)


def grouped_attention_weights(q_BxLxHxK, k_BxSxGxK, mask_BxLxS, bias_BxHxLxS=None,
                              scale=None):
  """Twin: `attention.attention_weights` on repeated KV heads, laid out B x G x R x L x S
  (R = H / G query heads per group): the G key heads are read in place, never repeated."""
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
  """Twin: `attention.scaled_dot_product_attention` with no bias or dropout, q already scaled,
  for the R query heads of each of G groups: B x L x G x R x K. The forward pass divides
  (e v) by sum(e) over L x K instead of normalising L x S weights, and the backward pass uses
  FlashAttention's identity (below), with no reduction over L x S."""
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
  sum_s(p dP)): dS = p (dP - D) = e (dP - D) / sum(e)."""
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


def grouped_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS, bias=None, rate=0.0,
                      key=None):
  """Twin: `attention.scaled_dot_product_attention` on split, repeated heads, here on
  B x L x H x K tokens-first layouts with the G key/value heads read in place; softmax_attention
  when there is no bias or dropout, the custom-gradient masked_softmax otherwise."""
  b, l, h, kw = q_BxLxHxK.shape
  if bias is None and (rate == 0.0 or key is None):
    g = k_BxSxGxK.shape[2]
    q_BxLxGxRxK = (q_BxLxHxK * (1.0 / math.sqrt(kw))).reshape(b, l, g, h // g, kw)
    return softmax_attention(q_BxLxGxRxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS).reshape(
        b, l, h, kw)
  att_BxGxRxLxS = grouped_attention_weights(q_BxLxHxK, k_BxSxGxK, mask_BxLxS, bias)
  att_BxGxRxLxS = dropout_lib.dropout(att_BxGxRxLxS, rate, key)
  out = jnp.einsum("bgrls,bsgk->blgrk", att_BxGxRxLxS.astype(v_BxSxGxK.dtype), v_BxSxGxK)
  return out.reshape(b, l, h, kw)


def xla_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, mask_BxLxS, bias=None):
  """Twin: `attention.scaled_dot_product_attention` (no dropout), through
  jax.nn.dot_product_attention, which may pick a backend's own fused kernel."""
  return jax.nn.dot_product_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, bias=bias,
                                      mask=mask_BxLxS[:, None])


def recomputed_block(block, x_BxLxD, positions_BxL, dropout_key=None):
  """Twin: `block(x)`; its backward pass recomputes the block from x rather than keeping its
  activations (gradient checkpointing).

  jax.checkpoint guards its recomputation with an optimization barrier, which XLA's CPU
  pipeline removes before CSE merges the recomputation back into the forward pass, so on CPU it
  saved nothing. Here the recomputation reads x + 0 * g[0] (g the block's output cotangent):
  exact for a finite g, and a value CSE cannot match. A block that draws from nnx RNG streams
  (LoRA dropout) runs as is: the recomputation would not advance its counters.
  """
  if jax.tree.leaves(nnx.state(block, nnx.RngState)):
    return block(x_BxLxD, positions_BxL, None, dropout_key)[0]
  graphdef, state = nnx.split(block)

  def forward(state, x_BxLxD):
    return nnx.merge(graphdef, state)(x_BxLxD, positions_BxL, None, dropout_key)[0]

  @jax.custom_vjp
  def run(state, x_BxLxD):
    return forward(state, x_BxLxD)

  def run_forward(state, x_BxLxD):
    return forward(state, x_BxLxD), (state, x_BxLxD)

  def run_backward(residuals, g_BxLxD):
    state, x_BxLxD = residuals
    x_BxLxD = x_BxLxD + 0.0 * g_BxLxD.reshape(-1)[0]  # ties the recomputation to g
    return jax.vjp(forward, state, x_BxLxD)[1](g_BxLxD)

  run.defvjp(run_forward, run_backward)
  return run(state, x_BxLxD)


def chunked_cross_entropy(head_fn, x_BxLxD, targets_BxL, weights_BxL=None, chunk_rows=128,
                          recompute=True):
  """Twin: `losses.cross_entropy(head_fn(x), targets, weights)`,  never holding all B*L x V
  logits:
  a scan over chunks of `chunk_rows` rows applies the head and sums the weighted -log p of
  each chunk; jax.checkpoint makes the backward pass recompute a chunk's logits instead of
  keeping them, so the vocabulary-sized buffers are chunk_rows x V. recompute=False keeps
  every chunk's logits instead (B*L x V floats, as an unchunked loss would): one head matmul
  fewer, for runs that keep their activations anyway (no gradient checkpointing)."""
  d = x_BxLxD.shape[-1]
  x_NxD = x_BxLxD.reshape(-1, d)
  targets_N = targets_BxL.reshape(-1)
  weights_N = (jnp.ones(targets_N.shape, jnp.float32) if weights_BxL is None
               else weights_BxL.reshape(-1).astype(jnp.float32))
  n = x_NxD.shape[0]
  chunk_rows = min(chunk_rows, n)
  pad = -n % chunk_rows  # padded rows carry weight 0
  x_CxRxD = jnp.pad(x_NxD, ((0, pad), (0, 0))).reshape(-1, chunk_rows, d)
  targets_CxR = jnp.pad(targets_N, (0, pad)).reshape(-1, chunk_rows)
  weights_CxR = jnp.pad(weights_N, (0, pad)).reshape(-1, chunk_rows)

  def chunk_loss(x_RxD, targets_R, weights_R):
    # -log p_t = logsumexp(z) - z_t: no R x V log-probabilities are written, and XLA:CPU
    # keeps the head's matmul a library call (log_softmax's max-subtract got the matmul fused
    # into an elementwise loop, 3x slower)
    logits_RxV = head_fn(x_RxD).astype(jnp.float32)
    nll_R = (jax.nn.logsumexp(logits_RxV, axis=-1)
             - jnp.take_along_axis(logits_RxV, targets_R[:, None], axis=-1)[:, 0])
    return jnp.sum(nll_R * weights_R)

  if recompute:
    chunk_loss = jax.checkpoint(chunk_loss)

  def body(total, chunk):
    return total + chunk_loss(*chunk), None

  total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (x_CxRxD, targets_CxR, weights_CxR))
  if weights_BxL is None:
    return total / n
  return total / jnp.maximum(jnp.sum(weights_N), 1.0)


_M_TRIM_THRESHOLD = -1  # free heap at the top beyond this goes back to the kernel
_M_MMAP_THRESHOLD = -3  # blocks from this size up get their own mmap


def retain_freed_memory(limit_bytes: int = 256 << 20) -> bool:
  """Keeps freed heap memory in the process, so that a jitted step's scratch space is not
  handed back to the kernel and faulted in again, page by page, on every call.

  XLA's CPU runtime allocates each call's temporaries in one block and frees it when the call
  ends; glibc serves blocks above its mmap threshold (adaptive, never above 32 MB) with a fresh
  mmap, so each step paid one zero-filled page fault per page. Here blocks under `limit_bytes`
  come from the heap, and up to `limit_bytes` of freed heap stays mapped. Returns False (and
  changes nothing) where the C library is not glibc.
  """
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(
      mallopt(_M_TRIM_THRESHOLD, limit_bytes))


try:  # built by `pip install -e .` (setup.py); a bare source tree runs without it
  from research.nn import _quant_kernels  # pylint: disable=g-import-not-at-top
except ImportError:
  _quant_kernels = None
else:
  for _kind in quantized.KINDS:
    jax.ffi.register_ffi_target(f"bookforai_{_kind.lower()}_matmul",
                                getattr(_quant_kernels, f"{_kind.lower()}_matmul"),
                                platform="cpu")


def quantized_kernel_available() -> bool:
  return _quant_kernels is not None


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def quantized_matmul(kind, x_RxK, q, d_NxB, m_NxB=None):
  """Twin: `quantized.readable_matmul(x, kind, q, d, m)`, y = x W^T with W in GGUF's blocks,
  through research/nn/quant_kernels.cc: W is read in its blocks (about 1 byte a weight
  instead of 4) and widened to floats in registers, never written out in float32."""
  out = jax.ShapeDtypeStruct((x_RxK.shape[0], d_NxB.shape[0]), jnp.float32)
  call = jax.ffi.ffi_call(f"bookforai_{kind.lower()}_matmul", out)
  scales = (d_NxB,) if kind == "Q8_0" else (d_NxB, m_NxB)
  return call(x_RxK, q, *scales)


def _quantized_matmul_forward(kind, x_RxK, q, d_NxB, m_NxB=None):
  return quantized_matmul(kind, x_RxK, q, d_NxB, m_NxB), (q, d_NxB, m_NxB)


def _quantized_matmul_backward(kind, residuals, g_RxN):
  q, d_NxB, m_NxB = residuals  # dx = g W; the stored weights get no gradient
  return g_RxN @ quantized.dequantize(kind, q, d_NxB, m_NxB), None, None, None


quantized_matmul.defvjp(_quantized_matmul_forward, _quantized_matmul_backward)
