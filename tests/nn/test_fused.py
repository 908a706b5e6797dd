import ctypes
import ctypes.util
import resource
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import config as config_lib
from research.nn import fused
from research.nn import losses
from research.nn import transformer


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
  assert fused.retain_freed_memory()
  _faults_of_fresh_block(num_bytes)  # the first one grows the heap
  assert _faults_of_fresh_block(num_bytes) < 0.05 * pages


def _tiny(**changes):
  base = dict(vocab_size=17, num_layers=2, width=16, num_heads=4, max_length=12)
  base.update(changes)
  return config_lib.ModelConfig(**base)


@pytest.mark.parametrize("tied_head", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_chunked_cross_entropy_equals_the_whole_logits_loss_and_gradient(tied_head, weighted):
  model = transformer.Transformer(_tiny(tied_head=tied_head, vocab_size=50), rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = jax.random.randint(jax.random.key(2), (3, 7), 0, 50)
  targets = jax.random.randint(jax.random.key(3), (3, 7), 0, 50)
  weights = (jax.random.uniform(jax.random.key(4), (3, 7)) < 0.6).astype(jnp.float32)
  weights = weights if weighted else None

  def whole(params):
    logits, _ = nnx.merge(graphdef, params)(tokens)
    return losses.cross_entropy(logits, targets, weights)

  def chunked(params):
    m = nnx.merge(graphdef, params)
    # 21 rows in chunks of 4: the last chunk is padded with weight-0 rows
    return fused.chunked_cross_entropy(m.head_logits, m.hidden(tokens), targets, weights,
                                             chunk_rows=4)

  want, want_grad = jax.value_and_grad(whole)(params)
  ours, ours_grad = jax.value_and_grad(chunked)(params)
  np.testing.assert_allclose(ours, want, rtol=1e-6, atol=1e-6)
  for a, b in zip(jax.tree.leaves(ours_grad), jax.tree.leaves(want_grad)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_recomputed_blocks_give_the_same_loss_and_gradient_with_less_memory():
  model = transformer.Transformer(_tiny(num_layers=6, width=32, max_length=64),
                                  rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tokens = jax.random.randint(jax.random.key(5), (4, 64), 0, 17)
  targets = jax.random.randint(jax.random.key(6), (4, 64), 0, 17)

  def loss(params, remat):
    m = nnx.merge(graphdef, params)
    return fused.chunked_cross_entropy(m.head_logits, m.hidden(tokens, remat=remat),
                                             targets)

  plain = jax.jit(jax.value_and_grad(lambda p: loss(p, False)))
  remat = jax.jit(jax.value_and_grad(lambda p: loss(p, True)))
  want, want_grad = plain(params)
  ours, ours_grad = remat(params)
  np.testing.assert_allclose(ours, want, rtol=1e-6)
  for a, b in zip(jax.tree.leaves(ours_grad), jax.tree.leaves(want_grad)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  temp = lambda f: f.lower(params).compile().memory_analysis().temp_size_in_bytes
  assert temp(remat) < 0.5 * temp(plain)
