"""LayerNorm and RMSNorm over the last axis, as the notebook writes them; statistics in float32
whatever the input dtype. `fused.layer_norm` is LayerNorm's fast twin (kernels="fused").

  LayerNorm(x) = (x - mean(x)) / sqrt(var(x) + eps) * g + b
  RMSNorm(x)   = x / sqrt(mean(x^2) + eps) * g
"""

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import fused


def layer_norm(x, scale, bias, eps):
  """(x - mean) / sqrt(var + eps) * scale + bias, per row; bias None: no shift."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  var = jnp.mean((x32 - mean) ** 2, axis=-1, keepdims=True)
  y = (x32 - mean) / jnp.sqrt(var + eps) * scale  # (x - mean) / std * g
  if bias is not None:
    y = y + bias  # + b
  return y.astype(x.dtype)


def rms_norm(x, scale, eps):
  """x / sqrt(mean(x^2) + eps) * scale (Llama's RMSNorm: no centring, no bias)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)  # x / rms(x)
  return (y * scale).astype(x.dtype)


class LayerNorm(nnx.Module):
  def __init__(self, dim: int, eps: float = 1e-5, use_bias: bool = True,
               kernels: str = "notebook"):
    self.eps, self.kernels = eps, kernels
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32)) if use_bias else None

  def __call__(self, x):
    bias = None if self.bias is None else self.bias[...]
    norm = fused.layer_norm if self.kernels == "fused" else layer_norm
    return norm(x, self.scale[...], bias, self.eps)


class RMSNorm(nnx.Module):
  def __init__(self, dim: int, eps: float = 1e-6):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))

  def __call__(self, x):
    return rms_norm(x, self.scale[...], self.eps)


def make_norm(config):
  if config.norm == "rmsnorm":
    return RMSNorm(config.width, config.norm_eps)
  return LayerNorm(config.width, config.norm_eps, config.norm_bias, config.kernels)
