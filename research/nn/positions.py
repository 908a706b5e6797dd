"""Where a token sits: learned (GPT-2), sinusoidal (Vaswani et al.), RoPE (rotate-half, as in
HF Llama) and ALiBi (a linear penalty on distance, one slope per head)."""

import math

import jax
import jax.numpy as jnp
from flax import nnx


class LearnedPositions(nnx.Module):
  def __init__(self, max_length: int, dim: int, *, rngs: nnx.Rngs, std: float = 0.02):
    self.embedding = nnx.Param(
        std * jax.random.normal(rngs.params(), (max_length, dim), jnp.float32))

  def __call__(self, positions_BxL):
    return jnp.take(self.embedding[...], positions_BxL, axis=0)


def sinusoidal(positions_BxL, dim: int):
  """PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D))."""
  inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
  angles_BxLxD2 = positions_BxL[..., None].astype(jnp.float32) * inv_freq
  pe = jnp.stack([jnp.sin(angles_BxLxD2), jnp.cos(angles_BxLxD2)], axis=-1)
  return pe.reshape(*positions_BxL.shape, -1)[..., :dim]


def rope_angles(positions_BxL, head_width: int, base: float):
  """cos and sin of p * base^(-2i/K), duplicated over both halves: B x L x 1 x K."""
  inv_freq = 1.0 / (base ** (jnp.arange(0, head_width, 2, dtype=jnp.float32) / head_width))
  angles = positions_BxL[..., None].astype(jnp.float32) * inv_freq
  angles_BxLxK = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles_BxLxK)[:, :, None, :], jnp.sin(angles_BxLxK)[:, :, None, :]


def apply_rope(x_BxLxHxK, cos, sin):
  """x * cos + rotate_half(x) * sin, rotate_half(x) = [-x2, x1] (HF's convention)."""
  half = x_BxLxHxK.shape[-1] // 2
  x1, x2 = x_BxLxHxK[..., :half], x_BxLxHxK[..., half:]
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  out = x_BxLxHxK.astype(jnp.float32) * cos + rotated.astype(jnp.float32) * sin
  return out.astype(x_BxLxHxK.dtype)


def alibi_slopes(num_heads: int):
  """Geometric slopes 2^(-8 i / n) for the nearest power of two n, interleaved beyond it."""
  def powers(n):
    start = 2.0 ** (-8.0 / n)
    return [start ** (i + 1) for i in range(n)]
  n = 2 ** math.floor(math.log2(num_heads))
  slopes = powers(n)
  if n < num_heads:
    slopes += powers(2 * n)[0::2][:num_heads - n]
  return jnp.asarray(slopes, jnp.float32)


def alibi_bias(slopes_H, q_positions_BxL, k_positions_BxS):
  """-slope_h * (q - k): B x H x L x S, zero on the diagonal, more negative further back."""
  distance = q_positions_BxL[:, None, :, None] - k_positions_BxS[:, None, None, :]
  return -slopes_H[None, :, None, None] * distance.astype(jnp.float32)
