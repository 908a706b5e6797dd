import pytest

from third_party import hf_names

NAMES = ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight",
         "model.layers.0.self_attn.q_proj.weight", "model.layers.11.self_attn.k_proj.bias",
         "model.layers.2.self_attn.o_proj.weight", "model.layers.3.mlp.down_proj.weight",
         "model.layers.4.input_layernorm.weight", "model.layers.5.post_attention_layernorm.weight"]


@pytest.mark.parametrize("name", NAMES)
def test_hf_names_round_trip(name):
  path, how = hf_names.hf_to_path(name)
  assert hf_names.path_to_hf(path) == (name, how)


def test_kernels_are_transposed_and_the_rest_are_not():
  assert hf_names.hf_to_path("model.layers.0.mlp.gate_proj.weight") == (
      "blocks.0.ffn.gate.kernel", "T")
  assert hf_names.hf_to_path("model.layers.0.self_attn.v_proj.bias") == (
      "blocks.0.attn.value.bias", "")
  assert hf_names.module_to_hf("blocks.7.attn.out") == "model.layers.7.self_attn.o_proj"


def test_gguf_names_map_to_hf():
  assert hf_names.gguf_to_hf("blk.3.attn_q.weight") == "model.layers.3.self_attn.q_proj.weight"
  assert hf_names.gguf_to_hf("blk.3.ffn_norm.weight") == (
      "model.layers.3.post_attention_layernorm.weight")
  assert hf_names.gguf_to_hf("output_norm.weight") == "model.norm.weight"
  for bad in ("blk.0.attn_qkv.weight", "model.layers.0.self_attn.rotary.weight"):
    with pytest.raises(KeyError):
      hf_names.gguf_to_hf(bad) if bad.startswith("blk") else hf_names.hf_to_path(bad)


@pytest.mark.parametrize("target, chosen", [
    ("all", True), ("q_proj,v_proj", True), ("k_proj", False),
    (r"model\.layers\.3\.self_attn\.q_proj", True), (r"model\.layers\.1\..*", False)])
def test_lora_target_is_a_predicate_on_our_paths(target, chosen):
  assert hf_names.LoraTarget(target)("blocks.3.attn.query") is chosen
