"""Position-wise feed-forward networks: GELU MLP (GPT-2) and SwiGLU (Llama)."""

import math

import jax
import jax.numpy as jnp
from flax import nnx


@jax.custom_vjp
def gelu(x):
  """Exact GELU, x * Phi(x), with its derivative Phi(x) + x phi(x) saved by the forward pass.

  Autodiff of erf recomputes erf's pieces in the backward pass, where XLA fuses them with the
  transpose feeding the weight-gradient matmul: on CPU that strided loop cost ~5 ms a layer
  in the nanoGPT benchmark. Saving the slope leaves one multiply for the backward pass.
  """
  return _gelu_forward(x)[0]


def _gelu_forward(x):
  # Phi(x) through erf, as PyTorch computes it: erfc's rational form was a third of the step on
  # CPU; 1 + erf(x) loses relative (not absolute, < 1e-7) accuracy in the far left tail.
  cdf = 0.5 * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))
  pdf = jnp.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))  # phi(x)
  return x * cdf, cdf + x * pdf  # gelu(x), gelu'(x)


def _gelu_backward(slope, g):
  return (g * slope,)


gelu.defvjp(_gelu_forward, _gelu_backward)


def tokens_first(layer, x_BxLxD):
  """Applies a Linear to x viewed as (B*L) x D, so that the weight gradient contracts one
  axis: with two (b, l) XLA's CPU backend transposes the whole B x L x F gradient first."""
  y = layer(x_BxLxD.reshape(-1, x_BxLxD.shape[-1]))
  return y.reshape(*x_BxLxD.shape[:-1], y.shape[-1])


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
    hidden_BxLxF = tokens_first(self.up, x_BxLxD)
    if self.approximate:
      return tokens_first(self.down, jax.nn.gelu(hidden_BxLxF, approximate=True))
    return tokens_first(self.down, gelu(hidden_BxLxF))


class SwiGlu(nnx.Module):
  """down(silu(gate(x)) * up(x))."""

  def __init__(self, config, *, rngs: nnx.Rngs):
    out_std = config.init_std / math.sqrt(2 * config.num_layers)
    self.gate = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.up = _linear(config.width, config.ffn_hidden, config.ffn_bias, config.init_std, rngs)
    self.down = _linear(config.ffn_hidden, config.width, config.ffn_bias, out_std, rngs)

  def __call__(self, x_BxLxD):
    gate_BxLxF = tokens_first(self.gate, x_BxLxD)
    return tokens_first(self.down, jax.nn.silu(gate_BxLxF) * tokens_first(self.up, x_BxLxD))


def make_ffn(config, rngs):
  return SwiGlu(config, rngs=rngs) if config.ffn == "swiglu" else Mlp(config, rngs=rngs)
