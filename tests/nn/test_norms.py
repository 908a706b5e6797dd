import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import norms


def test_layer_norm_rows_have_mean_zero_and_variance_one():
  x = 3.0 + 5.0 * jax.random.normal(jax.random.key(0), (16, 64))
  y = norms.LayerNorm(64)(x)
  np.testing.assert_allclose(jnp.mean(y, -1), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.var(y, -1), 1.0, atol=1e-3)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_layer_norm_matches_flax_reference(kernels):
  x = jax.random.normal(jax.random.key(1), (4, 5, 32))
  ours = norms.LayerNorm(32, eps=1e-5, kernels=kernels)
  ours.scale[...] = jax.random.normal(jax.random.key(2), (32,))
  ours.bias[...] = jax.random.normal(jax.random.key(3), (32,))
  ref = nnx.LayerNorm(32, epsilon=1e-5, rngs=nnx.Rngs(0))
  ref.scale[...], ref.bias[...] = ours.scale[...], ours.bias[...]
  np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)
  g_ours = jax.grad(lambda x: jnp.sum(jnp.sin(ours(x))))(x)
  g_ref = jax.grad(lambda x: jnp.sum(jnp.sin(ref(x))))(x)
  np.testing.assert_allclose(g_ours, g_ref, rtol=1e-4, atol=1e-5)


def test_rms_norm_matches_flax_reference():
  x = jax.random.normal(jax.random.key(1), (4, 5, 32))
  ours = norms.RMSNorm(32, eps=1e-6)
  ours.scale[...] = jax.random.normal(jax.random.key(2), (32,))
  ref = nnx.RMSNorm(32, epsilon=1e-6, rngs=nnx.Rngs(0))
  ref.scale[...] = ours.scale[...]
  np.testing.assert_allclose(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_bfloat16_input_keeps_its_dtype_with_float32_statistics():
  x = jax.random.normal(jax.random.key(0), (4, 32)).astype(jnp.bfloat16)
  assert norms.LayerNorm(32)(x).dtype == jnp.bfloat16
  assert norms.RMSNorm(32)(x).dtype == jnp.bfloat16


def test_layer_norm_without_bias_is_the_formula_without_b():
  x = 2.0 + 3.0 * jax.random.normal(jax.random.key(5), (3, 5, 16))
  scale = jax.random.normal(jax.random.key(6), (16,))
  mean = x.mean(-1, keepdims=True)
  want = (x - mean) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5) * scale
  np.testing.assert_allclose(norms.layer_norm(x, scale, None, 1e-5), want, rtol=1e-5,
                             atol=1e-5)
