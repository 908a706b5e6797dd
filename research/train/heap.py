"""Keeps freed heap memory in the process, so that a jitted step's scratch space is not handed
back to the kernel and faulted in again, page by page, on every call.

XLA's CPU runtime allocates each call's temporaries in one block (44 MB for the nanoGPT
Shakespeare step) and frees it when the call ends. glibc serves blocks above its mmap
threshold (adaptive, but never above 32 MB) with a fresh mmap, so every step took about 10,800
zero-filled page faults: 15-19 ms of kernel time a step against 34 ms of compute.
"""

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1  # free heap at the top beyond this goes back to the kernel
_M_MMAP_THRESHOLD = -3  # blocks from this size up get their own mmap


def retain_freed_memory(limit_bytes: int = 256 << 20) -> bool:
  """Blocks under `limit_bytes` come from the heap, and up to `limit_bytes` of freed heap stays
  mapped. Returns False (and changes nothing) where the C library is not glibc."""
  if not sys.platform.startswith("linux"):
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return bool(mallopt(_M_MMAP_THRESHOLD, limit_bytes)) and bool(
      mallopt(_M_TRIM_THRESHOLD, limit_bytes))
