"""Model FLOPs utilisation: achieved FLOP/s over a measured matmul peak on this machine."""

import functools
import statistics
import time

import jax
import jax.numpy as jnp


@functools.lru_cache(maxsize=None)
def measure_matmul_peak(size: int = 1024, dtype: str = "float32", repeats: int = 15) -> float:
  """Median FLOP/s of a jitted size x size matmul (2 n^3 FLOPs), the denominator of MFU."""
  a = jax.random.normal(jax.random.key(0), (size, size), jnp.dtype(dtype))
  b = jax.random.normal(jax.random.key(1), (size, size), jnp.dtype(dtype))
  matmul = jax.jit(jnp.matmul)
  matmul(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    matmul(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2.0 * size ** 3 / statistics.median(times)


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
  return flops_per_token * tokens_per_s / peak_flops
