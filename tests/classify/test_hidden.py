import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.classify import hidden
from research.nn import config as config_lib
from research.nn import transformer
from tests.classify import tiny


@pytest.mark.parametrize("tied", [True, False])
def test_last_hidden_state_is_what_the_head_reads(tied):
  config = config_lib.llama(vocab_size=64, num_layers=2, width=32, num_heads=4, num_kv_heads=2,
                            ffn_width=48, tied_head=tied, init_std=0.2)
  model = transformer.Transformer(config, rngs=nnx.Rngs(1))
  tokens_2x7 = jnp.asarray(np.random.default_rng(0).integers(0, 64, (2, 7)))
  h_2x7xD = nnx.jit(hidden.last_hidden_state)(model, tokens_2x7)
  assert h_2x7xD.shape == (2, 7, 32)
  logits, _ = model(tokens_2x7)
  head = model.embed.attend if tied else model.head  # logits = h E^T (tied) or h W
  np.testing.assert_allclose(np.asarray(head(h_2x7xD)), np.asarray(logits), atol=1e-5)


def test_describe_prints_ids_and_shapes():
  lm = tiny.tiny_lm()
  ids, h, lines = hidden.describe(lm.tokenizer, lm.model, "w5 w6 w7")
  assert ids == [5, 6, 7] and h.shape == (1, 3, lm.config.width)
  assert "last hidden state B x L x D: (1, 3, 32)" in "\n".join(lines)
