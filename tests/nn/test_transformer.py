import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import config as config_lib
from research.nn import transformer


def _tiny(**changes):
  base = dict(vocab_size=17, num_layers=2, width=16, num_heads=4, max_length=12)
  base.update(changes)
  return config_lib.ModelConfig(**base)


_LLAMA_STYLE = {"position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "num_kv_heads": 2}


@pytest.mark.parametrize("changes,kernels", [
    ({}, "fused"), ({"position": "sinusoidal", "tied_head": False}, "fused"),
    ({"position": "alibi"}, "fused"), (_LLAMA_STYLE, "fused"),
    ({"position": "alibi"}, "notebook"), (_LLAMA_STYLE, "notebook"),
])
def test_causality_by_gradient(changes, kernels):
  """The output at position t has zero gradient with respect to the inputs after t."""
  model = transformer.Transformer(_tiny(kernels=kernels, **changes), rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(1), (1, 10), 0, 17)
  pos = jnp.arange(10)[None]
  x_BxLxD = model.embed_tokens(tokens, pos)
  t = 4
  grad = jax.grad(lambda x: jnp.sum(jnp.sin(model.trunk(x, pos)[0][:, t])))(x_BxLxD)
  per_position = np.asarray(jnp.sum(jnp.abs(grad), axis=(0, 2)))
  assert np.all(per_position[t + 1:] == 0.0)
  assert np.all(per_position[: t + 1] > 0.0)


def test_dropout_is_off_without_a_key_and_random_with_one():
  model = transformer.Transformer(_tiny(dropout=0.5), rngs=nnx.Rngs(0))
  tokens = jnp.arange(8)[None]
  eval_a, _ = model(tokens)
  eval_b, _ = model(tokens)
  np.testing.assert_array_equal(eval_a, eval_b)
  train_a, _ = model(tokens, dropout_key=jax.random.key(0))
  train_b, _ = model(tokens, dropout_key=jax.random.key(0))
  train_c, _ = model(tokens, dropout_key=jax.random.key(1))
  np.testing.assert_array_equal(train_a, train_b)
  assert not np.allclose(train_a, eval_a) and not np.allclose(train_a, train_c)


def test_parameter_names_follow_the_roles():
  model = transformer.Transformer(config_lib.llama(vocab_size=11, num_layers=1, width=8,
                                                   num_heads=2, num_kv_heads=1, ffn_width=16,
                                                   qkv_bias=True), rngs=nnx.Rngs(0))
  names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model))}
  for name in ("embed/embedding", "blocks/0/attn/query/kernel", "blocks/0/attn/query/bias",
               "blocks/0/attn/out/kernel", "blocks/0/ffn/gate/kernel", "blocks/0/ffn/down/kernel",
               "blocks/0/attn_norm/scale", "final_norm/scale", "head/kernel"):
    assert name in names, sorted(names)
  assert "blocks/0/attn/out/bias" not in names


@pytest.mark.parametrize("changes", [{"position": "alibi"}, _LLAMA_STYLE])
def test_kv_cache_decoding_equals_the_full_forward_in_the_notebook_form(changes):
  """(The fused form's cache: tests/generate/test_decode.py.)"""
  kernels = "notebook"
  model = transformer.Transformer(_tiny(kernels=kernels, init_std=0.3, **changes),
                                  rngs=nnx.Rngs(0))
  tokens = jax.random.randint(jax.random.key(2), (2, 9), 0, 17)
  full, _ = model(tokens)
  cache = transformer.init_cache(model.config, 2, 12)
  logits, cache = model(tokens[:, :5], cache=cache)  # a prompt, then one token at a time
  steps = [logits]
  for t in range(5, 9):
    logits, cache = model(tokens[:, t:t + 1], cache=cache)
    steps.append(logits)
  np.testing.assert_allclose(jnp.concatenate(steps, axis=1), full, rtol=1e-5, atol=1e-5)


def _layer_norm(x, scale, bias, eps=1e-5):
  mean = x.mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(x.var(-1, keepdims=True) + eps) * scale + bias


@pytest.mark.parametrize("kernels", ["notebook", "fused"])
def test_post_norm_block_is_its_formula(kernels):
  """BERT's block with biases everywhere, exact-erf GELU and a padding mask, written out:
  x <- LN(x + attn(x)); x <- LN(x + ffn(x))."""
  config = _tiny(kernels=kernels, norm_position="post", causal=False, ffn="gelu",
                 init_std=0.3, width=12, num_heads=3, ffn_width=20)
  block = transformer.Block(config, rngs=nnx.Rngs(0))
  for norm in (block.attn_norm, block.ffn_norm):  # non-trivial g and b
    norm.scale[...] = 1.0 + 0.5 * jax.random.normal(jax.random.key(3), (12,))
    norm.bias[...] = jax.random.normal(jax.random.key(4), (12,))
  x = np.asarray(jax.random.normal(jax.random.key(5), (2, 6, 12)), np.float64)
  valid = np.arange(6)[None] < np.array([[6], [4]])  # the second row ends in two pads
  mask = jnp.broadcast_to(jnp.asarray(valid)[:, None, :], (2, 6, 6))
  ours, _ = block(jnp.asarray(x, jnp.float32), jnp.broadcast_to(jnp.arange(6), (2, 6)),
                  mask_BxLxS=mask)

  p = lambda layer: (np.asarray(layer.kernel[...], np.float64),
                     np.asarray(layer.bias[...], np.float64))
  dense = lambda x, layer: x @ p(layer)[0] + p(layer)[1]
  heads = lambda t: t.reshape(2, 6, 3, 4).transpose(0, 2, 1, 3)
  attn = block.attn
  q, k, v = heads(dense(x, attn.query)), heads(dense(x, attn.key)), heads(dense(x, attn.value))
  scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(4) + np.where(valid, 0, -np.inf)[:, None, None]
  weights = np.exp(scores - scores.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  attended = dense((weights @ v).transpose(0, 2, 1, 3).reshape(2, 6, 12), attn.out)
  norm = lambda x, n: _layer_norm(x, np.asarray(n.scale[...]), np.asarray(n.bias[...]))
  x = norm(x + attended, block.attn_norm)
  hidden = dense(x, block.ffn.up)
  erf = np.vectorize(math.erf)
  hidden = hidden * 0.5 * (1.0 + erf(hidden / np.sqrt(2.0)))  # exact GELU, x Phi(x)
  want = norm(x + dense(hidden, block.ffn.down), block.ffn_norm)
  np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)


def test_a_post_norm_model_has_no_final_norm():
  model = transformer.Transformer(_tiny(norm_position="post"), rngs=nnx.Rngs(0))
  names = {"/".join(map(str, path)) for path, _ in nnx.to_flat_state(nnx.state(model))}
  assert not any(name.startswith("final_norm") for name in names)
  assert model(jnp.arange(5)[None])[0].shape == (1, 5, 17)
