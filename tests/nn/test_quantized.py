"""GGUF's block-quantized weights kept quantized: the readable dequantization against the gguf
package's, the fast form (fused.quantized_matmul, the C++ kernel) against the readable one
(forward and gradient). The packaged SmolLM2 loaded quantized is checked against transformers
on the same file in tests/test_pretrained.py (a prompt and a decode-sized one)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research import pretrained
from research.nn import fused
from research.nn import lora
from research.nn import quantized
from third_party import gguf_file


def _blocks(kind, n, k, seed=0):
  rng = np.random.default_rng(seed)
  if kind == "Q8_0":
    q = rng.integers(-128, 128, (n, k), dtype=np.int8)  # -128 included: the sign edge
    return q, rng.random((n, k // 32), dtype=np.float32) * 0.02, None
  q = rng.integers(0, 256, (n, k // 2), dtype=np.uint8)
  return (q, rng.random((n, k // 32), dtype=np.float32) * 0.02,
          -rng.random((n, k // 32), dtype=np.float32) * 0.1)


def test_the_kernel_is_built():
  """`pip install -e .` builds it here (setup.py); without it GGUF models decode in float32."""
  assert fused.quantized_kernel_available()


@pytest.fixture(scope="module")
def smollm2_gguf():
  return gguf_file.read(pretrained.packaged_path("smollm2-135m-instruct"))


@pytest.mark.parametrize("name", ["token_embd.weight", "blk.0.ffn_down.weight"])
def test_dequantize_is_the_gguf_packages(smollm2_gguf, name):
  """GgufFile.blocks + dequantize give the weights gguf.quants.dequantize gives, bit for bit,
  for the packaged file's Q8_0 table and a Q4_1 matrix (their first 256 rows)."""
  import gguf as gguf_package  # pylint: disable=g-import-not-at-top
  gguf = smollm2_gguf
  kind = gguf.tensor_types[name]
  assert kind in quantized.KINDS
  q, d, m = (None if a is None else a[:256] for a in gguf.blocks(name))
  raw = gguf._tensors_by_name[name]  # pylint: disable=protected-access
  theirs = gguf_package.quants.dequantize(raw.data[:256], raw.tensor_type)
  np.testing.assert_array_equal(np.asarray(quantized.dequantize(kind, q, d, m)), theirs)


@pytest.mark.parametrize("kind", quantized.KINDS)
@pytest.mark.parametrize("rows", [1, 3, 4, 9])  # one row, the 4-row tiles and their tail
def test_kernel_equals_the_readable_form(kind, rows):
  """Forward and gradient with respect to x; they differ only in the order of float32 sums
  (K = 96: 3 blocks; N = 42: a tile of 32 columns and a tail of 10, not a multiple of 4)."""
  q, d, m = _blocks(kind, 42, 96)
  x = jax.random.normal(jax.random.key(rows), (rows, 96))
  g = jax.random.normal(jax.random.key(1), (rows, 42))
  fast = lambda x: fused.quantized_matmul(kind, x, q, d, m)
  slow = lambda x: quantized.readable_matmul(x, kind, q, d, m)
  np.testing.assert_allclose(jax.jit(fast)(x), slow(x), rtol=1e-5, atol=1e-5)
  grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * g))(x)
  np.testing.assert_allclose(grad(fast), grad(slow), rtol=1e-5, atol=1e-5)
  w = np.asarray(quantized.dequantize(kind, q, d, m), np.float64)  # y = x W^T, in float64
  np.testing.assert_allclose(jax.jit(fast)(x), np.asarray(x, np.float64) @ w.T, rtol=1e-5,
                             atol=1e-5)


def test_lora_on_a_quantized_base_trains_and_refuses_to_merge():
  q, d, m = _blocks("Q4_1", 64, 64)
  layer = lora.LoRALinear(quantized.QuantizedLinear("Q4_1", q, d, m), 4, 8.0, rngs=nnx.Rngs(0))
  layer.lora_b.set_value(jnp.ones_like(layer.lora_b[...]))
  x = jax.random.normal(jax.random.key(0), (2, 64))
  w = quantized.dequantize("Q4_1", q, d, m)
  expected = x @ w.T + 2.0 * (x @ layer.lora_a[...].T) @ layer.lora_b[...].T
  np.testing.assert_allclose(layer(x), expected, rtol=1e-5, atol=1e-5)
  grads = nnx.grad(lambda l: jnp.sum(l(x) ** 2), argnums=nnx.DiffState(0, lora.LoRAParam))(layer)
  assert float(jnp.abs(grads["lora_a"][...]).sum()) > 0
  with pytest.raises(ValueError, match="quantized=False"):
    layer.merge()
