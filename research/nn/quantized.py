"""GGUF's block-quantized weights, kept quantized for inference, as llama.cpp runs them.

A GGUF file stores a weight matrix W (out x in) in blocks of 32 consecutive weights of a row,
each block with its own scale:

  Q8_0:  w = d * q          q an int8, one float d per block
  Q4_1:  w = d * q + m      q in 0..15 (4 bits), one d and one m per block

`dequantize` is that formula and `matmul` is y = x dequantize(W)^T, x float32: only the
weights are quantized. `QuantizedLinear` and `QuantizedEmbedding` stand in for nnx.Linear and
our Embedding in a model loaded from such a file (research.pretrained.load_model).

Why: a decode step multiplies every weight once, so its time is the time to read the weights;
float32 reads 4 bytes a weight, Q8_0 1.1 and Q4_1 0.75 (the scales are kept as float32).
XLA:CPU cannot fuse a dequantization into a matmul (it writes the float32 matrix out first,
10x slower than a float32 matvec), so up to KERNEL_ROWS rows (a decode step, a short prompt)
go through the fast form, `fused.quantized_matmul`: a small C++ kernel (`quant_kernels.cc`,
through jax.ffi) that widens each block's
codes to floats in registers and takes the scales out of the sum, d (q . x) + m (sum x). More
rows take the readable form, one dequantization and XLA's matmul. Both give the float32
model's y up to the order of float32 sums (tests/nn/test_quantized.py).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

BLOCK = 32
KINDS = ("Q8_0", "Q4_1")
KERNEL_ROWS = 128  # up to this many rows of x take the kernel; beyond, XLA's float matmul is faster

class QuantizedWeight(nnx.Variable):
  """Stored codes or scales of a quantized weight: loaded, never trained."""


def dequantize(kind: str, q, d_NxB, m_NxB=None):
  """W (N x 32B, float32) from its blocks: q as `GgufFile.blocks` unpacks it."""
  n, blocks = d_NxB.shape
  if kind == "Q8_0":
    q_NxBx32 = q.reshape(n, blocks, BLOCK).astype(jnp.float32)
    w_NxBx32 = d_NxB[..., None] * q_NxBx32                       # w = d q
  elif kind == "Q4_1":
    bytes_NxBx16 = q.reshape(n, blocks, BLOCK // 2)
    # weight j of a block is the low nibble of byte j, weight j + 16 its high nibble
    q_NxBx32 = jnp.concatenate([bytes_NxBx16 & 0xF, bytes_NxBx16 >> 4], -1).astype(jnp.float32)
    w_NxBx32 = d_NxB[..., None] * q_NxBx32 + m_NxB[..., None]    # w = d q + m
  else:
    raise ValueError(f"quantized weight kind {kind!r}: expected one of {KINDS}.")
  return w_NxBx32.reshape(n, blocks * BLOCK)


def matmul(x_MxK, kind: str, q, d_NxB, m_NxB=None):
  """x W^T for W = dequantize(kind, q, d, m), float32: the kernel for up to KERNEL_ROWS rows on
  a CPU, else the readable form (one dequantization and XLA's matmul)."""
  from research.nn import fused  # pylint: disable=g-import-not-at-top  (fused imports us)
  rows = int(np.prod(x_MxK.shape[:-1]))
  if rows <= KERNEL_ROWS and fused.quantized_kernel_available() and jax.default_backend() == "cpu":
    x_RxK = x_MxK.reshape(rows, x_MxK.shape[-1]).astype(jnp.float32)
    y_RxN = fused.quantized_matmul(kind, x_RxK, q, d_NxB, m_NxB)
    return y_RxN.reshape(*x_MxK.shape[:-1], d_NxB.shape[0])
  return readable_matmul(x_MxK, kind, q, d_NxB, m_NxB)


def readable_matmul(x_MxK, kind: str, q, d_NxB, m_NxB=None):
  return x_MxK.astype(jnp.float32) @ dequantize(kind, q, d_NxB, m_NxB).T   # y = x W^T


class QuantizedLinear(nnx.Module):
  """nnx.Linear's y = x W + b with W kept in blocks (stored out x in, as GGUF has it)."""

  def __init__(self, kind: str, q, d_NxB, m_NxB=None, bias=None):
    if kind not in KINDS:
      raise ValueError(f"quantized weight kind {kind!r}: expected one of {KINDS}.")
    self.kind = kind
    self.q = QuantizedWeight(jnp.asarray(q))
    self.d = QuantizedWeight(jnp.asarray(d_NxB, jnp.float32))
    self.m = None if m_NxB is None else QuantizedWeight(jnp.asarray(m_NxB, jnp.float32))
    self.bias = None if bias is None else nnx.Param(jnp.asarray(bias, jnp.float32))
    self.out_features, blocks = d_NxB.shape
    self.in_features = blocks * BLOCK

  def __call__(self, x):
    m = None if self.m is None else self.m[...]
    y = matmul(x, self.kind, self.q[...], self.d[...], m)
    return y if self.bias is None else y + self.bias[...].astype(y.dtype)

  def dequantized(self):
    """W as nnx.Linear keeps it: in x out, float32."""
    m = None if self.m is None else self.m[...]
    return dequantize(self.kind, self.q[...], self.d[...], m).T


class QuantizedEmbedding(QuantizedLinear):
  """The token table (V x D) kept in blocks: rows are looked up and dequantized; `attend` is
  the tied head, logits = x table^T."""

  def __call__(self, ids_BxL):
    m = None if self.m is None else self.m[...][ids_BxL]
    q = self.q[...][ids_BxL]
    rows = dequantize(self.kind, q.reshape(-1, q.shape[-1]), self.d[...][ids_BxL].reshape(
        -1, self.d.shape[-1]), None if m is None else m.reshape(-1, m.shape[-1]))
    return rows.reshape(*ids_BxL.shape, self.in_features)

  def attend(self, x_BxLxD):
    return QuantizedLinear.__call__(self, x_BxLxD)
