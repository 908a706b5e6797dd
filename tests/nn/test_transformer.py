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
