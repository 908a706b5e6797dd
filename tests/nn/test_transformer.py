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


@pytest.mark.parametrize("changes", [
    {}, {"position": "sinusoidal", "tied_head": False}, {"position": "alibi"},
    {"position": "rope", "norm": "rmsnorm", "ffn": "swiglu", "num_kv_heads": 2},
])
def test_causality_by_gradient(changes):
  """The output at position t has zero gradient with respect to the inputs after t."""
  model = transformer.Transformer(_tiny(**changes), rngs=nnx.Rngs(0))
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


def test_cross_entropy_of_uniform_logits_is_log_v():
  logits = jnp.zeros((2, 3, 17))
  targets = jnp.zeros((2, 3), jnp.int32)
  np.testing.assert_allclose(transformer.cross_entropy(logits, targets), np.log(17), rtol=1e-6)
  weights = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(transformer.cross_entropy(logits, targets, weights), np.log(17),
                             rtol=1e-6)


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
    return transformer.cross_entropy(logits, targets, weights)

  def chunked(params):
    m = nnx.merge(graphdef, params)
    # 21 rows in chunks of 4: the last chunk is padded with weight-0 rows
    return transformer.chunked_cross_entropy(m.head_logits, m.hidden(tokens), targets, weights,
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
    return transformer.chunked_cross_entropy(m.head_logits, m.hidden(tokens, remat=remat),
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
