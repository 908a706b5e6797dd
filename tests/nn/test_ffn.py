import jax
import numpy as np
from flax import nnx

from research.nn import config as config_lib
from research.nn import ffn


def _config(kind):
  return config_lib.ModelConfig(vocab_size=3, num_layers=1, width=8, num_heads=2,
                                ffn_width=12, ffn=kind)


def test_gelu_mlp_is_down_gelu_up():
  mlp = ffn.make_ffn(_config("gelu"), nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 8))
  hidden = jax.nn.gelu(x @ mlp.up.kernel[...] + mlp.up.bias[...], approximate=False)
  expected = hidden @ mlp.down.kernel[...] + mlp.down.bias[...]
  np.testing.assert_allclose(mlp(x), expected, rtol=1e-5, atol=1e-6)


def test_swiglu_is_down_of_silu_gate_times_up():
  glu = ffn.make_ffn(_config("swiglu"), nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (2, 3, 8))
  gate = x @ glu.gate.kernel[...] + glu.gate.bias[...]
  up = x @ glu.up.kernel[...] + glu.up.bias[...]
  hidden = gate * jax.nn.sigmoid(gate) * up
  np.testing.assert_allclose(glu(x), hidden @ glu.down.kernel[...] + glu.down.bias[...],
                             rtol=1e-5, atol=1e-6)


def test_gelu_and_its_saved_slope_match_autodiff_of_exact_gelu():
  x = jax.random.normal(jax.random.key(3), (1000,)) * 4
  # 1 + erf(x) (PyTorch's form) against jax's erfc form: equal to float32 rounding in absolute
  # terms; in the far left tail, where gelu ~ 0, only the relative error grows.
  np.testing.assert_allclose(ffn.gelu(x), jax.nn.gelu(x, approximate=False), rtol=1e-6,
                             atol=1e-6)
  ours = jax.vmap(jax.grad(ffn.gelu))(x)
  reference = jax.vmap(jax.grad(lambda t: jax.nn.gelu(t, approximate=False)))(x)
  np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
  torch_form = x * 0.5 * (1 + jax.lax.erf(x / np.sqrt(2.0)))
  np.testing.assert_allclose(ffn.gelu(x), torch_form, rtol=1e-6, atol=1e-7)
