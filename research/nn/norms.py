"""LayerNorm and RMSNorm over the last axis; statistics in float32 whatever the input dtype."""

import jax
import jax.numpy as jnp
from flax import nnx


def layer_norm(x, scale, bias, eps):
  """y = (x - mean) / sqrt(var + eps) * scale + bias, per row."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  centred = x32 - mean
  var = jnp.mean(centred * centred, axis=-1, keepdims=True)
  y = centred * jax.lax.rsqrt(var + eps) * scale
  if bias is not None:
    y = y + bias
  return y.astype(x.dtype)


def rms_norm(x, scale, eps):
  """y = x / sqrt(mean(x^2) + eps) * scale (Llama's RMSNorm)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return (y * scale).astype(x.dtype)


class LayerNorm(nnx.Module):
  def __init__(self, dim: int, eps: float = 1e-5, use_bias: bool = True):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))
    self.bias = nnx.Param(jnp.zeros((dim,), jnp.float32)) if use_bias else None

  def __call__(self, x):
    bias = None if self.bias is None else self.bias[...]
    return layer_norm(x, self.scale[...], bias, self.eps)


class RMSNorm(nnx.Module):
  def __init__(self, dim: int, eps: float = 1e-6):
    self.eps = eps
    self.scale = nnx.Param(jnp.ones((dim,), jnp.float32))

  def __call__(self, x):
    return rms_norm(x, self.scale[...], self.eps)


def make_norm(config):
  if config.norm == "rmsnorm":
    return RMSNorm(config.width, config.norm_eps)
  return LayerNorm(config.width, config.norm_eps, config.norm_bias)
