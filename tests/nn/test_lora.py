import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from research.nn import config as config_lib
from research.nn import lora
from research.nn import losses
from research.nn import transformer
from third_party import hf_names


def _model():
  config = config_lib.llama(vocab_size=50, num_layers=2, width=32, num_heads=4, num_kv_heads=2,
                            ffn_width=40)
  return transformer.Transformer(config, rngs=nnx.Rngs(0))


def test_a_fresh_adapter_changes_nothing_and_a_starts_kaiming_uniform():
  model = _model()
  tokens = jnp.arange(12).reshape(2, 6)
  before = model(tokens)[0]
  names = lora.apply_lora(model, rank=4, alpha=8)
  assert len(names) == 2 * 7 and names[0] == "blocks.0.attn.query"
  np.testing.assert_array_equal(model(tokens)[0], before)
  layer = dict(lora.lora_layers(model))["blocks.0.attn.query"]
  a = np.asarray(layer.lora_a[...])
  assert a.shape == (4, 32) and np.all(np.abs(a) <= 1 / np.sqrt(32)) and a.std() > 0.05
  assert layer.scale == 2.0


def test_forward_is_base_plus_scaled_low_rank_update():
  base = nnx.Linear(6, 5, rngs=nnx.Rngs(0))
  layer = lora.LoRALinear(base, rank=2, alpha=6, rngs=nnx.Rngs(1))
  layer.lora_b.set_value(jax.random.normal(jax.random.key(2), (5, 2)))
  x = jax.random.normal(jax.random.key(3), (3, 6))
  a, b = layer.lora_a[...], layer.lora_b[...]
  np.testing.assert_allclose(layer(x), base(x) + 3.0 * x @ a.T @ b.T, rtol=1e-5)  # alpha/r = 3
  rs = lora.LoRALinear(nnx.Linear(6, 5, rngs=nnx.Rngs(0)), rank=4, alpha=6, rslora=True,
                       rngs=nnx.Rngs(1))
  assert rs.scale == pytest.approx(3.0)  # alpha / sqrt(r)


def test_layers_are_chosen_by_our_module_paths():
  wrapped = lora.apply_lora(_model(), lambda path: path.endswith(".ffn.down"), rank=2)
  assert wrapped == ["blocks.0.ffn.down", "blocks.1.ffn.down"]


@pytest.mark.parametrize("target, expected", [
    ("all", 14), ("q_proj,v_proj", 4), ("down_proj", 2),
    (r"model\.layers\.1\.self_attn\.(q|k)_proj", 2)])
def test_targets(target, expected):
  # LLaMA-Factory's HF-named lora_target, translated by third_party, picks the same linears.
  assert len(lora.apply_lora(_model(), hf_names.LoraTarget(target), rank=2)) == expected


def test_bad_targets_are_named():
  with pytest.raises(ValueError, match="lora_target='lm_head' matches no linear"):
    lora.apply_lora(_model(), hf_names.LoraTarget("lm_head"), rank=2)
  with pytest.raises(ValueError, match="lora_target='q_proj,\\('"):
    hf_names.LoraTarget("q_proj,(")


def test_only_lora_parameters_get_gradients_and_optimizer_state():
  model = _model()
  lora.apply_lora(model, rank=2)
  graphdef, trainable, rest = nnx.split(model, lora.LoRAParam, ...)
  tokens = jnp.arange(12).reshape(2, 6)

  def loss(params):
    logits, _ = nnx.merge(graphdef, params, rest)(tokens)
    return losses.cross_entropy(logits, tokens)

  grads = jax.grad(loss)(trainable)
  grad_names = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(grads)}
  assert grad_names and all(n.endswith(("lora_a", "lora_b")) for n in grad_names)
  opt_state = optax.adam(1e-3).init(trainable)
  moments = jax.tree.leaves(opt_state)
  trainable_count, base_count = lora.count_parameters(model)
  assert sum(m.size for m in moments if m.ndim) == 2 * trainable_count
  # r (in + out) per wrapped linear: q, k, v, o, gate, up (in 32) and down (in 40), 2 blocks
  per_block = 2 * sum(i + o for i, o in [(32, 32), (32, 16), (32, 16), (32, 32), (32, 40),
                                         (32, 40), (40, 32)])
  assert trainable_count == 2 * per_block
  assert base_count > 5 * trainable_count


def test_dropout_only_in_training_mode():
  base = nnx.Linear(8, 8, rngs=nnx.Rngs(0))
  layer = lora.LoRALinear(base, rank=2, alpha=4, dropout=0.5, rngs=nnx.Rngs(1))
  layer.lora_b.set_value(jnp.ones((8, 2)))
  x = jnp.ones((4, 8))
  layer.eval()
  np.testing.assert_array_equal(layer(x), layer(x))
  layer.train()
  assert not np.allclose(layer(x), layer(x))
