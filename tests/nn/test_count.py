import jax
from flax import nnx
from hypothesis import given, settings
from hypothesis import strategies as st

from research.nn import config as config_lib
from research.nn import count
from research.nn import transformer


def _leaf_count(config):
  model = transformer.abstract_model(config)  # shapes only: nothing is allocated
  return sum(leaf.size for leaf in jax.tree.leaves(nnx.state(model, nnx.Param)))


def test_gpt2_small_has_124_439_808_parameters_with_a_tied_head():
  config = config_lib.gpt2_small()
  assert count.parameter_count(config) == 124_439_808
  assert _leaf_count(config) == 124_439_808
  table = count.parameter_table(config)
  assert table["token embedding"] == 50257 * 768 and table["position embedding"] == 1024 * 768
  untied = config.replace(tied_head=False)
  assert count.parameter_count(untied) == 124_439_808 + 50257 * 768 == _leaf_count(untied)


def test_smollm2_135m_count_matches_its_published_size():
  config = config_lib.smollm2_135m()
  assert count.parameter_count(config) == _leaf_count(config) == 134_515_008


@st.composite
def configs(draw):
  kv_heads = draw(st.integers(1, 3))
  heads = kv_heads * draw(st.integers(1, 3))
  return config_lib.ModelConfig(
      vocab_size=draw(st.integers(1, 50)), num_layers=draw(st.integers(0, 3)),
      width=draw(st.integers(1, 12)), num_heads=heads, num_kv_heads=kv_heads,
      head_width=2 * draw(st.integers(1, 4)), ffn_width=draw(st.integers(1, 20)),
      max_length=draw(st.integers(1, 16)),
      position=draw(st.sampled_from(config_lib.POSITIONS)),
      norm=draw(st.sampled_from(config_lib.NORMS)), norm_bias=draw(st.booleans()),
      ffn=draw(st.sampled_from(config_lib.FFNS)), qkv_bias=draw(st.booleans()),
      out_bias=draw(st.booleans()), ffn_bias=draw(st.booleans()),
      tied_head=draw(st.booleans()))


@settings(max_examples=40, deadline=None)
@given(configs())
def test_closed_form_count_equals_the_real_leaf_count(config):
  assert count.parameter_count(config) == _leaf_count(config)


def test_flops_per_token_is_six_n_plus_attention():
  config = config_lib.gpt2_small()
  norms = 25 * 2 * 768  # not matmuls; the tied table counts once, as the head's matmul
  n_matmul = count.parameter_count(config) - 1024 * 768 - norms
  expected = 6 * n_matmul + 12 * 12 * 768 * 1024
  assert count.flops_per_token(config, 1024) == expected
  assert count.flops_per_token(config, 1024, training=False) == expected / 3
