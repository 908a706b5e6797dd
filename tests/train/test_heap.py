import ctypes
import ctypes.util
import resource
import sys

import pytest

from research.train import heap


def _faults_of_fresh_block(num_bytes):
  """Minor page faults of malloc + writing every page + free, as XLA's scratch space sees."""
  libc = ctypes.CDLL(ctypes.util.find_library("c"))
  libc.malloc.restype = ctypes.c_void_p
  libc.free.argtypes = (ctypes.c_void_p,)
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(num_bytes)
  ctypes.memset(block, 1, num_bytes)
  after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  libc.free(block)
  return after - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_block_is_reused_without_page_faults():
  num_bytes = 48 << 20  # above glibc's 32 MB ceiling for its adaptive mmap threshold
  pages = num_bytes // resource.getpagesize()
  assert heap.retain_freed_memory()
  _faults_of_fresh_block(num_bytes)  # the first one grows the heap
  assert _faults_of_fresh_block(num_bytes) < 0.05 * pages
