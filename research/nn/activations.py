"""Activations and their derivatives in closed form.

A layer without a non-linearity composes with the next into one linear map; each function here
breaks that, at a price the derivative shows: sigmoid' <= 1/4 (gradients shrink through depth),
sigmoid's output is never negative (a unit's incoming weight gradients all share a sign),
relu' = 0 for x < 0 (a unit that never fires never learns again).
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx


def sigmoid(x):
  return jax.nn.sigmoid(x)  # 1 / (1 + e^-x)


def sigmoid_grad(x):
  s = jax.nn.sigmoid(x)
  return s * (1.0 - s)  # s' = s (1 - s), at most 1/4 at x = 0


def tanh(x):
  return jnp.tanh(x)


def tanh_grad(x):
  return 1.0 - jnp.tanh(x) ** 2  # tanh' = 1 - tanh^2, at most 1 at x = 0


def relu(x):
  return jnp.maximum(x, 0.0)


def relu_grad(x):
  return (x > 0).astype(jnp.result_type(x, jnp.float32))  # 1 for x > 0, 0 otherwise


def leaky_relu(x, negative_slope: float = 0.01):
  return jnp.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x, negative_slope: float = 0.01):
  return jnp.where(x > 0, 1.0, negative_slope).astype(jnp.result_type(x, jnp.float32))


def prelu(x, slope):
  """Leaky ReLU whose slope is a parameter: a scalar, or one per channel (last axis)."""
  return jnp.where(x > 0, x, slope * x)


def prelu_grad(x, slope):
  """(d/dx, d/dslope) of prelu."""
  return jnp.where(x > 0, 1.0, slope), jnp.where(x > 0, 0.0, x)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x, approximate: bool = True):
  """x Phi(x); approximate=True is the tanh form GPT-2 uses (and jax.nn.gelu's default)."""
  if approximate:
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
    return 0.5 * x * (1.0 + jnp.tanh(u))  # x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  return 0.5 * x * (1.0 + jax.lax.erf(x / math.sqrt(2.0)))  # x Phi(x)


def gelu_grad(x, approximate: bool = True):
  if approximate:
    u = _SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)
    t = jnp.tanh(u)
    du = _SQRT_2_OVER_PI * (1.0 + 3 * 0.044715 * x ** 2)
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t ** 2) * du
  phi = jnp.exp(-0.5 * x ** 2) / math.sqrt(2.0 * math.pi)
  return 0.5 * (1.0 + jax.lax.erf(x / math.sqrt(2.0))) + x * phi  # Phi(x) + x phi(x)


def silu(x):
  return x * jax.nn.sigmoid(x)  # x s(x), also called swish


def silu_grad(x):
  s = jax.nn.sigmoid(x)
  return s * (1.0 + x * (1.0 - s))  # s + x s (1 - s)


def identity(x):
  return x


def identity_grad(x):
  return jnp.ones_like(x)


# name -> (f, f'); prelu is listed with its initial slope 0.25 (He et al. 2015).
FUNCTIONS = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "prelu": (lambda x: prelu(x, 0.25), lambda x: prelu_grad(x, 0.25)[0]),
    "gelu": (gelu, gelu_grad),
    "silu": (silu, silu_grad),
    "identity": (identity, identity_grad),
}


class PReLU(nnx.Module):
  """max(0, x) + a min(0, x) with a learnable a: one shared slope, or one per channel."""

  def __init__(self, num_channels: int = 1, init_slope: float = 0.25, dtype=jnp.float32):
    self.slope = nnx.Param(jnp.full((num_channels,), init_slope, dtype))

  def __call__(self, x):
    return prelu(x, self.slope[...])  # (C,) broadcasts over the last axis; (1,) is shared
