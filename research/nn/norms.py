"""LayerNorm and RMSNorm over the last axis; statistics in float32 whatever the input dtype."""

import functools

import jax
import jax.numpy as jnp
from flax import nnx


def layer_norm(x, scale, bias, eps):
  """y = (x - mean) / sqrt(var + eps) * scale + bias, per row."""
  if bias is None:
    return _layer_norm(x, scale, jnp.zeros_like(scale), eps)
  return _layer_norm(x, scale, bias, eps)


def _normalise(x, eps):
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=-1, keepdims=True)
  centred = x32 - mean
  rstd = jax.lax.rsqrt(jnp.mean(centred * centred, axis=-1, keepdims=True) + eps)
  return centred * rstd, rstd  # x_hat, 1 / sqrt(var + eps)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x, scale, bias, eps):
  x_hat, _ = _normalise(x, eps)
  return (x_hat * scale + bias).astype(x.dtype)


def _layer_norm_forward(x, scale, bias, eps):
  x_hat, rstd = _normalise(x, eps)
  return (x_hat * scale + bias).astype(x.dtype), (x_hat, rstd, scale, bias)


def _layer_norm_backward(eps, residuals, g):
  """dx = rstd (gs - mean(gs) - x_hat mean(gs x_hat)), gs = g * scale: the autodiff graph's
  reductions and broadcasts folded into two row means."""
  del eps
  x_hat, rstd, scale, bias = residuals
  g32 = g.astype(jnp.float32)
  gs = g32 * scale
  dx = rstd * (gs - jnp.mean(gs, axis=-1, keepdims=True)
               - x_hat * jnp.mean(gs * x_hat, axis=-1, keepdims=True))
  rows = tuple(range(g.ndim - 1))
  return (dx.astype(g.dtype), jnp.sum(g32 * x_hat, axis=rows).astype(scale.dtype),
          jnp.sum(g32, axis=rows).astype(bias.dtype))


_layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


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
