"""The compute dtype a run asks for, checked against the device that will run it.

XLA:CPU emulates bfloat16 (and float16) matmuls unless the CPU has AMX tiles for them;
AVX512_BF16 alone is not enough (BENCHMARKS.md: a Zen CPU that has it runs a LoRA SFT step in
bf16 slower than in float32). So on such a CPU a low-precision request computes in float32
instead, and the run says so once. GPUs and TPUs keep what was asked.

  dtype, note = precision.effective_dtype("bfloat16")   # note: one line for the log, or ""
"""

import functools
import os
from pathlib import Path

import jax

FAST_BF16_FLAGS = ("amx_bf16",)
# BOOKFORAI_CPU_BF16=1 forces the low-precision path on any CPU (tests, benchmarks of the
# emulated path); =0 forces the float32 fallback.
FORCE_ENV = "BOOKFORAI_CPU_BF16"


def cpu_info(text: str) -> tuple[str, set[str]]:
  """(model name, flags) of the first processor in /proc/cpuinfo's text."""
  name, flags = "unknown CPU", set()
  for line in text.splitlines():
    key, _, value = line.partition(":")
    key = key.strip()
    if key == "model name" and name == "unknown CPU":
      name = value.strip()
    elif key == "flags" and not flags:
      flags = set(value.split())
  return name, flags


@functools.cache
def _this_cpu() -> tuple[str, frozenset]:
  try:
    name, flags = cpu_info(Path("/proc/cpuinfo").read_text())
  except OSError:  # not Linux: no way to tell, so assume no fast bf16
    name, flags = "unknown CPU", set()
  return name, frozenset(flags)


def cpu_name() -> str:
  """This machine's CPU model, as /proc/cpuinfo names it."""
  return _this_cpu()[0]


def effective_dtype(requested: str, device=None, cpuinfo: str | None = None) -> tuple[str, str]:
  """(the dtype to compute in, one line saying why it differs from `requested`, or "").

  `device`: a jax device (default: the first); `cpuinfo`: /proc/cpuinfo's text (default:
  this machine's, read once).
  """
  if requested not in ("bfloat16", "float16"):
    return requested, ""
  device = device if device is not None else jax.devices()[0]
  if device.platform != "cpu":
    return requested, ""
  forced = os.environ.get(FORCE_ENV, "")
  if forced in ("0", "1"):
    return (requested, "") if forced == "1" else (
        "float32", f"{requested}: {FORCE_ENV}=0; computing in float32.")
  name, flags = cpu_info(cpuinfo) if cpuinfo is not None else _this_cpu()
  if requested == "bfloat16" and set(flags) & set(FAST_BF16_FLAGS):
    return requested, ""
  # float16 has no fast CPU matmuls at all here (AVX512_FP16 is not used by XLA:CPU's dots)
  what = "AMX bf16" if requested == "bfloat16" else "fast float16 matmuls"
  return "float32", (f"{requested}: this CPU ({name}, no {what}) would emulate "
                     f"{requested} matmuls, several times slower; computing in float32.")
