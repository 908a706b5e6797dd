"""The value head: one linear on the LM's final states, trained alone under LoRA."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.nn import lora
from research.nn import transformer
from research.nn import value_head
from research.nn.config import ModelConfig
from research.train import state as state_lib

CONFIG = ModelConfig(vocab_size=23, width=12, num_layers=2, num_heads=3, max_length=16)


def _model():
  lm = transformer.Transformer(CONFIG, rngs=nnx.Rngs(0))
  return value_head.WithValueHead(lm, rngs=nnx.Rngs(1))


def test_values_are_the_head_on_the_states_the_lm_head_reads():
  model = _model()
  tokens = jnp.asarray(np.random.default_rng(0).integers(0, 23, (2, 7)))
  x_BxLxD = model.lm.hidden(tokens)
  w, b = model.v_head.kernel[...], model.v_head.bias[...]
  np.testing.assert_allclose(model.values(tokens), (x_BxLxD @ w + b)[..., 0], atol=1e-6)
  logits, values = model.logits_and_values(tokens)
  np.testing.assert_allclose(logits, model.lm(tokens)[0], atol=1e-5)
  np.testing.assert_allclose(values, model.values(tokens), atol=1e-6)


def test_under_lora_only_the_adapters_and_the_value_head_train():
  model = _model()
  lora.apply_lora(model.lm, rank=2)
  parts = state_lib.split(model, value_head.trainable("lora"))
  paths = ["/".join(str(k.key) for k in path)
           for path, _ in jax.tree_util.tree_flatten_with_path(parts.params)[0]]
  assert any(p.startswith("v_head") for p in paths)
  assert all(p.startswith("v_head") or "lora_" in p for p in paths)
  assert sum(x.size for x in jax.tree.leaves(parts.frozen)) > 0


def test_last_token_values_read_each_rows_last_real_position():
  values = jnp.arange(12.0).reshape(2, 6)
  np.testing.assert_array_equal(value_head.last_token_values(values, jnp.asarray([3, 6])),
                                [2.0, 11.0])
