"""Position-wise feed-forward networks, as the notebook draws them, on B x L x D:

  Mlp(x)    = down(gelu(up(x)))               (GPT-2; BERT with exact-erf GELU)
  SwiGlu(x) = down(silu(gate(x)) * up(x))     (Llama)

With kernels="fused" the same layers run through `fused.tokens_first` and GELU through
`fused.gelu_saved_slope`.
"""

import math

import jax
from flax import nnx

from research.nn import activations
from research.nn import fused


def _linear(din, dout, use_bias, std, rngs):
  return nnx.Linear(din, dout, use_bias=use_bias, rngs=rngs,
                    kernel_init=nnx.initializers.normal(std))


class Mlp(nnx.Module):
  """down(gelu(up(x))); ffn="gelu" is the exact x Phi(x), "gelu_tanh" GPT-2's tanh form."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    out_std = config.init_std / math.sqrt(2 * config.num_layers)
    self.approximate = config.ffn == "gelu_tanh"
    self.kernels = config.kernels
    self.up = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.down = _linear(config.ffn_hidden, config.width, config.ffn_bias, out_std, rngs)

  def __call__(self, x_BxLxD):
    if self.kernels == "fused":
      return self._fused(x_BxLxD)
    hidden_BxLxF = activations.gelu(self.up(x_BxLxD), self.approximate)  # gelu(x W_1 + b_1)
    return self.down(hidden_BxLxF)  # h W_2 + b_2

  def _fused(self, x_BxLxD):
    hidden_BxLxF = fused.tokens_first(self.up, x_BxLxD)
    if self.approximate:
      return fused.tokens_first(self.down, jax.nn.gelu(hidden_BxLxF, approximate=True))
    return fused.tokens_first(self.down, fused.gelu_saved_slope(hidden_BxLxF))


class SwiGlu(nnx.Module):
  """down(silu(gate(x)) * up(x))."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    out_std = config.init_std / math.sqrt(2 * config.num_layers)
    self.kernels = config.kernels
    self.gate = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.up = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.down = _linear(config.ffn_hidden, config.width, config.ffn_bias, out_std, rngs)

  def __call__(self, x_BxLxD):
    if self.kernels == "fused":
      return self._fused(x_BxLxD)
    hidden_BxLxF = activations.silu(self.gate(x_BxLxD)) * self.up(x_BxLxD)  # silu(x W_g) * x W_u
    return self.down(hidden_BxLxF)

  def _fused(self, x_BxLxD):
    gate_BxLxF = fused.tokens_first(self.gate, x_BxLxD)
    return fused.tokens_first(self.down, jax.nn.silu(gate_BxLxF)
                              * fused.tokens_first(self.up, x_BxLxD))


def make_ffn(config, rngs):
  return SwiGlu(config, rngs=rngs) if config.ffn == "swiglu" else Mlp(config, rngs=rngs)
