"""ModelConfig: the widths it derives, the presets, and one sentence for a bad field."""

import pytest

from research.nn import config as config_lib

TINY = dict(vocab_size=11, num_layers=1, width=8, num_heads=2)


def test_derived_widths_and_presets():
  plain = config_lib.ModelConfig(**TINY)
  assert (plain.kv_heads, plain.head, plain.ffn_hidden) == (2, 4, 32)  # H, D / H, 4 D
  smol = config_lib.smollm2_135m()
  assert (smol.kv_heads, smol.head, smol.ffn_hidden, smol.rope_base) == (3, 64, 1536, 1e5)
  assert (smol.position, smol.norm, smol.ffn) == ("rope", "rmsnorm", "swiglu")
  assert not (smol.qkv_bias or smol.out_bias or smol.ffn_bias or smol.norm_bias)
  assert smol.tied_head and not config_lib.llama(11, 1, 8, 2, 1, 16).tied_head
  assert config_lib.gpt2_small().replace(dropout=0.1).dropout == 0.1


@pytest.mark.parametrize("changes, message", [
    (dict(position="rotary"), r"ModelConfig\.position='rotary': expected one of"),
    (dict(norm="batchnorm"), r"ModelConfig\.norm='batchnorm'"),
    (dict(ffn="relu"), r"ModelConfig\.ffn='relu'"),
    (dict(attention="flash"), r"ModelConfig\.attention='flash'"),
    (dict(kernels="triton"), r"ModelConfig\.kernels='triton'"),
    (dict(norm_position="sandwich"), r"ModelConfig\.norm_position='sandwich'"),
    (dict(num_kv_heads=3, num_heads=4), r"num_kv_heads=3 must divide num_heads=4"),
    (dict(width=10, num_heads=4), r"width=10 is not divisible by num_heads=4"),
    (dict(position="rope", head_width=3), r"RoPE needs an even head width, got 3"),
    (dict(dropout=1.0), r"ModelConfig\.dropout=1\.0: expected 0 <= p < 1"),
])
def test_a_bad_field_is_named(changes, message):
  with pytest.raises(ValueError, match=message):
    config_lib.ModelConfig(**{**TINY, **changes})
  with pytest.raises(ValueError, match=message):  # replace() checks as well
    config_lib.ModelConfig(**TINY).replace(**changes)
