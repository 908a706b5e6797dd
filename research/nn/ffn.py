"""Position-wise feed-forward networks: GELU MLP (GPT-2) and SwiGLU (Llama)."""

import math

import jax
from flax import nnx


def _linear(din, dout, use_bias, std, rngs):
  return nnx.Linear(din, dout, use_bias=use_bias, rngs=rngs,
                    kernel_init=nnx.initializers.normal(std))


class Mlp(nnx.Module):
  """down(gelu(up(x)))."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    out_std = config.init_std / math.sqrt(2 * config.num_layers)
    self.approximate = config.ffn == "gelu_tanh"
    self.up = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.down = _linear(config.ffn_hidden, config.width, config.ffn_bias, out_std, rngs)

  def __call__(self, x_BxLxD):
    return self.down(jax.nn.gelu(self.up(x_BxLxD), approximate=self.approximate))


class SwiGlu(nnx.Module):
  """down(silu(gate(x)) * up(x))."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    out_std = config.init_std / math.sqrt(2 * config.num_layers)
    self.gate = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.up = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.down = _linear(config.ffn_hidden, config.width, config.ffn_bias, out_std, rngs)

  def __call__(self, x_BxLxD):
    return self.down(jax.nn.silu(self.gate(x_BxLxD)) * self.up(x_BxLxD))


def make_ffn(config, rngs):
  return SwiGlu(config, rngs=rngs) if config.ffn == "swiglu" else Mlp(config, rngs=rngs)
