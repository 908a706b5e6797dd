import jax
import numpy as np
import pytest
from flax import nnx

from research.nn import config as config_lib
from research.nn import ffn


def _config(kind, kernels="notebook"):
  return config_lib.ModelConfig(vocab_size=3, num_layers=1, width=8, num_heads=2,
                                ffn_width=12, ffn=kind, kernels=kernels)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_gelu_mlp_is_down_gelu_up(kernels):
  mlp = ffn.make_ffn(_config("gelu", kernels), nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 8))
  hidden = jax.nn.gelu(x @ mlp.up.kernel[...] + mlp.up.bias[...], approximate=False)
  expected = hidden @ mlp.down.kernel[...] + mlp.down.bias[...]
  np.testing.assert_allclose(mlp(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_swiglu_is_down_of_silu_gate_times_up(kernels):
  glu = ffn.make_ffn(_config("swiglu", kernels), nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 8))
  gate = x @ glu.gate.kernel[...] + glu.gate.bias[...]
  up = x @ glu.up.kernel[...] + glu.up.bias[...]
  hidden = gate * jax.nn.sigmoid(gate) * up
  np.testing.assert_allclose(glu(x), hidden @ glu.down.kernel[...] + glu.down.bias[...],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_tanh_gelu_mlp_is_gpt2s_form(kernels):
  mlp = ffn.make_ffn(_config("gelu_tanh", kernels), nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(2), (2, 3, 8)) * 3
  hidden = jax.nn.gelu(x @ mlp.up.kernel[...] + mlp.up.bias[...], approximate=True)
  np.testing.assert_allclose(mlp(x), hidden @ mlp.down.kernel[...] + mlp.down.bias[...],
                             rtol=1e-5, atol=1e-5)
