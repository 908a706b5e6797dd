"""Model FLOPs utilisation: achieved FLOP/s over the matmul peak measured on this machine.

The peak is measured once per machine, several sizes of jitted n x n matmul, the median of
repeats at each, and kept in the project's cache (research/cache.py) under the device's name,
its core count, the JAX version and the dtype, so two runs of one command divide by the same
number; the figure is printed with what it was measured on:

  peak = flops.machine_peak()          # measured the first time, read from the cache after
  print(peak.describe(mfu))            # MFU 23% of 105 GFLOP/s measured on AMD EPYC, 2 cores

A peak measured while the machine was busy stays low until its entry is deleted from
~/.cache/bookforai/matmul_peak.json (the next run measures it again).
"""

import dataclasses
import functools
import json
import os
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from research import cache
from research import files
from research.train import precision

# n of the n x n matmuls timed: a CPU's cores are busy from a few hundred on; an accelerator
# needs thousands
CPU_SIZES = (256, 512, 1024)
ACCELERATOR_SIZES = (2048, 4096, 8192)
REPEATS = 9
CACHE_FILE = "matmul_peak.json"


@dataclasses.dataclass(frozen=True)
class Peak:
  flops: float   # FLOP/s
  machine: str   # what it was measured on: "AMD EPYC, 2 cores"

  def describe(self, mfu_value: float) -> str:
    return (f"MFU {100 * mfu_value:.1f}% of {self.flops / 1e9:.0f} GFLOP/s measured on "
            f"{self.machine}")


def measure_matmul_peak(sizes=None, dtype: str = "float32", repeats: int = REPEATS,
                        timer=time.perf_counter) -> float:
  """The best over `sizes` of the median FLOP/s of `repeats` jitted n x n matmuls (2 n^3
  FLOPs each): small sizes leave cores idle, so the best size is the machine's peak, and the
  median at each keeps one slow repeat (a neighbour's burst of work) out of it."""
  if sizes is None:
    sizes = CPU_SIZES if jax.devices()[0].platform == "cpu" else ACCELERATOR_SIZES
  matmul = jax.jit(jnp.matmul)
  best = 0.0
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.dtype(dtype))
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.dtype(dtype))
    matmul(a, b).block_until_ready()  # compiles
    times = []
    for _ in range(repeats):
      start = timer()
      matmul(a, b).block_until_ready()
      times.append(timer() - start)
    best = max(best, 2.0 * n ** 3 / statistics.median(times))
  return best


def machine(device=None) -> str:
  """The device a peak belongs to: a CPU's model and the cores this process may use, or an
  accelerator's kind."""
  device = device if device is not None else jax.devices()[0]
  if device.platform != "cpu":
    return device.device_kind
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return f"{precision.cpu_name()}, {cores} cores"


@functools.lru_cache(maxsize=None)
def machine_peak(dtype: str = "float32", cache_file: Path | None = None, measure=None) -> Peak:
  """This machine's peak (measure_matmul_peak, or `measure(dtype)`), measured once and kept in
  `cache_file` (default: the project's cache folder) under the machine, the JAX version and
  the dtype."""
  path = Path(cache_file) if cache_file is not None else cache.folder() / CACHE_FILE
  name = machine()
  key = f"{name} | jax {jax.__version__} | {dtype}"
  known = _read(path)
  entry = known.get(key)
  if isinstance(entry, dict) and isinstance(entry.get("flops"), (int, float)):
    return Peak(float(entry["flops"]), name)
  flops = (measure or measure_matmul_peak)(dtype=dtype)
  known[key] = {"flops": flops, "repeats": REPEATS,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
  files.write_json(path, known)
  return Peak(flops, name)


def _read(path: Path) -> dict:
  """The cached peaks; a missing or broken file is an empty cache (it is measured again)."""
  try:
    known = json.loads(path.read_text())
  except (OSError, ValueError):
    return {}
  return known if isinstance(known, dict) else {}


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float) -> float:
  return flops_per_token * tokens_per_s / peak_flops
