"""The fast forms, each beside the readable one it replaces (named in its docstring) and proven
equal to it, forward and gradient, by tests/nn/test_fused.py. Nothing here is needed to
understand the book; everything here is there for speed or memory. BENCHMARKS.md measures what
each buys.

  recomputed_block       twin: transformer.Block      the backward pass recomputes the block
  chunked_cross_entropy  twin: losses.cross_entropy   the head's logits a chunk of rows at a time
  retain_freed_memory    (no twin: an allocator setting for the jitted step's scratch space)
"""

import ctypes
import ctypes.util
import sys

import jax
import jax.numpy as jnp
from flax import nnx


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


def chunked_cross_entropy(head_fn, x_BxLxD, targets_BxL, weights_BxL=None, chunk_rows=128):
  """Twin: `losses.cross_entropy(head_fn(x), targets, weights)`,  never holding all B*L x V
  logits:
  a scan over chunks of `chunk_rows` rows applies the head and sums the weighted -log p of
  each chunk; jax.checkpoint makes the backward pass recompute a chunk's logits instead of
  keeping them, so the vocabulary-sized buffers are chunk_rows x V."""
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

  @jax.checkpoint
  def chunk_loss(x_RxD, targets_R, weights_R):
    logp_RxV = jax.nn.log_softmax(head_fn(x_RxD).astype(jnp.float32), axis=-1)
    nll_R = -jnp.take_along_axis(logp_RxV, targets_R[:, None], axis=-1)[:, 0]
    return jnp.sum(nll_R * weights_R)

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
