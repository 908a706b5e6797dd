import ctypes
import ctypes.util
import resource
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import attention
from research.nn import config as config_lib
from research.nn import fused
from research.nn import losses
from research.nn import positions as positions_lib
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
@pytest.mark.parametrize("weighted,recompute", [(True, True), (False, True), (True, False)])
def test_chunked_cross_entropy_equals_the_whole_logits_loss_and_gradient(tied_head, weighted,
                                                                         recompute):
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
                                       chunk_rows=4, recompute=recompute)

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


# Every fused form against its notebook twin: float32, uneven sizes (B=3, L=7, H=3 query heads
# over G=1 key/value head of width K=5, D=15, F=37), forward and gradient (a vjp with a random
# cotangent). Tolerance 1e-5 (relative and absolute): the forms differ only in the order of
# float32 operations.
B, L, H, G, K, D, F = 3, 7, 3, 1, 5, 15, 37
TOL = dict(rtol=1e-5, atol=1e-5)


def _normal(seed, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.key(seed), shape)


def _assert_same_vjp(fast, twin, args, seed=99):
  """fast(*args) == twin(*args), and so are their vjps with one random cotangent."""
  ours, ours_vjp = jax.vjp(fast, *args)
  want, want_vjp = jax.vjp(twin, *args)
  np.testing.assert_allclose(ours, want, **TOL)
  g = _normal(seed, want.shape)
  for a, b in zip(ours_vjp(g), want_vjp(g)):
    np.testing.assert_allclose(a, b, **TOL)


def test_tokens_first_equals_the_linear_on_b_x_l_x_d():
  layer = nnx.Linear(D, F, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(layer)
  x = _normal(1, (B, L, D))
  apply = lambda form: lambda params, x: form(nnx.merge(graphdef, params), x)
  fast = apply(fused.tokens_first)
  twin = apply(lambda layer, x: layer(x))
  ours, ours_vjp = jax.vjp(fast, params, x)
  want, want_vjp = jax.vjp(twin, params, x)
  np.testing.assert_allclose(ours, want, **TOL)
  g = _normal(2, want.shape)
  for a, b in zip(jax.tree.leaves(ours_vjp(g)), jax.tree.leaves(want_vjp(g))):
    np.testing.assert_allclose(a, b, **TOL)


def test_gelu_saved_slope_equals_exact_gelu():
  from research.nn import activations  # pylint: disable=g-import-not-at-top
  x = _normal(3, (B, L, F), 4.0)
  _assert_same_vjp(fused.gelu_saved_slope, lambda x: activations.gelu(x, approximate=False),
                   (x,))
  # and jax's own erfc form, to float32 rounding in absolute terms
  np.testing.assert_allclose(fused.gelu_saved_slope(x), jax.nn.gelu(x, approximate=False),
                             rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("with_bias", [True, False])
def test_fused_layer_norm_equals_the_formula(with_bias):
  from research.nn import norms  # pylint: disable=g-import-not-at-top
  x = 2.0 + _normal(4, (B, L, D), 3.0)
  scale, bias = _normal(5, (D,)), _normal(6, (D,))
  if with_bias:
    _assert_same_vjp(lambda *a: fused.layer_norm(*a, 1e-5),
                     lambda *a: norms.layer_norm(*a, 1e-5), (x, scale, bias))
  else:
    _assert_same_vjp(lambda *a: fused.layer_norm(*a, None, 1e-5),
                     lambda *a: norms.layer_norm(*a, None, 1e-5), (x, scale))


def test_masked_softmax_equals_softmax_of_the_masked_scores():
  scores = _normal(7, (B, H, L, L))
  mask = jnp.tril(jnp.ones((L, L), bool))
  _assert_same_vjp(lambda s: fused.masked_softmax(s, mask),
                   lambda s: jax.nn.softmax(jnp.where(mask, s, -jnp.inf), axis=-1), (scores,))


def _qkv(seed, kv_heads=G):
  q_BxLxHxK = _normal(seed, (B, L, H, K), 2.0)  # peaked weights: a wrong softmax shows
  k_BxLxGxK = _normal(seed + 1, (B, L, kv_heads, K), 2.0)
  v_BxLxGxK = _normal(seed + 2, (B, L, kv_heads, K))
  return q_BxLxHxK, k_BxLxGxK, v_BxLxGxK


def _notebook_attention(q_BxLxHxK, k_BxSxGxK, v_BxSxGxK, mask, bias=None, rate=0.0, key=None):
  """attention.scaled_dot_product_attention on split, repeated heads, back to B x L x H x K."""
  heads = lambda t: t.transpose(0, 2, 1, 3)  # B x L x H x K <-> B x H x L x K
  y_BxHxLxK = attention.scaled_dot_product_attention(
      heads(q_BxLxHxK), attention.repeat_kv(heads(k_BxSxGxK), H),
      attention.repeat_kv(heads(v_BxSxGxK), H), mask, bias, rate, key)
  return heads(y_BxHxLxK)


def _causal():
  positions = jnp.broadcast_to(jnp.arange(L), (B, L))
  return attention.causal_mask(positions, positions)


def test_softmax_attention_equals_scaled_dot_product_attention():
  q, k, v = _qkv(10)
  mask = _causal()

  def fast(q, k, v):  # the kernel takes q scaled and grouped: B x L x G x R x K
    q_BxLxGxRxK = (q / np.sqrt(K)).reshape(B, L, G, H // G, K)
    return fused.softmax_attention(q_BxLxGxRxK, k, v, mask).reshape(B, L, H, K)

  _assert_same_vjp(fast, lambda q, k, v: _notebook_attention(q, k, v, mask), (q, k, v))


@pytest.mark.parametrize("kv_heads", [1, 3])
@pytest.mark.parametrize("case", ["causal", "padding", "alibi", "dropout"])
def test_grouped_attention_equals_scaled_dot_product_attention(case, kv_heads):
  q, k, v = _qkv(20, kv_heads)
  positions = jnp.broadcast_to(jnp.arange(L), (B, L))
  mask, bias, rate, key = _causal(), None, 0.0, None
  if case == "padding":  # bidirectional, the last keys of two rows are padding
    mask = attention.padding_mask(jnp.arange(L)[None] < jnp.array([[7], [5], [2]]), L)
  if case == "alibi":
    bias = positions_lib.alibi_bias(positions_lib.alibi_slopes(H), positions, positions)
  if case == "dropout":  # the same key draws the same mask: B x G x R x L x S = B x H x L x S
    rate, key = 0.3, jax.random.key(5)
  _assert_same_vjp(lambda q, k, v: fused.grouped_attention(q, k, v, mask, bias, rate, key),
                   lambda q, k, v: _notebook_attention(q, k, v, mask, bias, rate, key),
                   (q, k, v))


def test_xla_attention_equals_scaled_dot_product_attention():
  q, k, v = _qkv(30)
  mask = _causal()
  _assert_same_vjp(lambda q, k, v: fused.xla_attention(q, k, v, mask),
                   lambda q, k, v: _notebook_attention(q, k, v, mask), (q, k, v))


STYLES = {
    "gpt2": dict(position="learned", ffn="gelu"),
    "gpt2_tanh_alibi": dict(position="alibi", ffn="gelu_tanh", tied_head=False),
    "llama": dict(position="rope", norm="rmsnorm", ffn="swiglu", num_kv_heads=1,
                  qkv_bias=False, out_bias=False, ffn_bias=False, norm_bias=False,
                  tied_head=False),
    "bert": dict(position="learned", norm_position="post", causal=False),
}


def _model_pair(style, **changes):
  """The same parameters under kernels="notebook" and kernels="fused"."""
  fields = dict(vocab_size=23, num_layers=2, width=D, num_heads=H, head_width=K + 1,
                ffn_width=F, max_length=L, init_std=0.3, **STYLES[style])
  fields.update(changes)
  if fields["position"] != "rope":
    fields["head_width"] = K
  graphdef_of = lambda kernels: nnx.split(transformer.Transformer(
      config_lib.ModelConfig(kernels=kernels, **fields), rngs=nnx.Rngs(0)))
  notebook, params = graphdef_of("notebook")
  fast, fast_params = graphdef_of("fused")
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(fast_params)):
    np.testing.assert_array_equal(a, b)
  return notebook, fast, params


@pytest.mark.parametrize("style", list(STYLES))
def test_whole_transformer_notebook_and_fused_agree(style):
  notebook, fast, params = _model_pair(style)
  tokens = jax.random.randint(jax.random.key(8), (B, L), 0, 23)
  targets = jax.random.randint(jax.random.key(9), (B, L), 0, 23)

  def loss(graphdef):
    def f(params):
      logits, _ = nnx.merge(graphdef, params)(tokens)
      return losses.cross_entropy(logits, targets), logits
    return jax.jit(jax.value_and_grad(f, has_aux=True))(params)

  (want, want_logits), want_grad = loss(notebook)
  (ours, ours_logits), ours_grad = loss(fast)
  np.testing.assert_allclose(ours_logits, want_logits, **TOL)
  np.testing.assert_allclose(ours, want, **TOL)
  for a, b in zip(jax.tree.leaves(ours_grad), jax.tree.leaves(want_grad)):
    np.testing.assert_allclose(a, b, **TOL)


def test_whole_transformer_forms_agree_with_dropout_on_the_same_key():
  notebook, fast, params = _model_pair("gpt2", dropout=0.2)
  tokens = jax.random.randint(jax.random.key(8), (B, L), 0, 23)
  key = jax.random.key(3)
  run = lambda graphdef: jax.jit(
      lambda p: nnx.merge(graphdef, p)(tokens, dropout_key=key)[0])(params)
  np.testing.assert_allclose(run(fast), run(notebook), **TOL)
