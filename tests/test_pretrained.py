"""Pretrained checkpoints in our Transformer give transformers' logits."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the oracle must never reach for a hub

import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position
import tokenizers  # pylint: disable=wrong-import-position
import torch  # pylint: disable=wrong-import-position
import transformers  # pylint: disable=wrong-import-position

from research import pretrained  # pylint: disable=wrong-import-position
from research.nn import quantized  # pylint: disable=wrong-import-position
from third_party import hf_checkpoint  # pylint: disable=wrong-import-position

# initializer_range 0.3, not HF's 0.02: at 0.02 attention is near uniform and a RoPE or
# attention-scale bug moves logits by only 3e-4 to 9e-3 (RoPE base doubled, rotation sign
# flipped, pairs interleaved, scale 1/K); at 0.3 each moves them by 6 to 12 against a float32
# gap of 1e-5, so the 1e-4 tolerance cannot miss one.
TINY = dict(vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-6, initializer_range=0.3)


def _save_tiny(kind: str, path, **changes):
  torch.manual_seed(0)
  if kind == "llama":
    config = transformers.LlamaConfig(**TINY, rope_theta=500.0, **changes)
    model = transformers.LlamaForCausalLM(config)
  else:
    config = transformers.Qwen2Config(**TINY, rope_theta=500.0, **changes)
    model = transformers.Qwen2ForCausalLM(config)
  with torch.no_grad():  # random biases, norms away from 1, so a dropped tensor shows
    for name, p in model.named_parameters():
      if name.endswith("bias") or "norm" in name:
        p.copy_(torch.randn_like(p) * 0.5 + (1.0 if "norm" in name else 0.0))
  model.save_pretrained(path)
  vocab = {f"t{i}": i for i in range(TINY["vocab_size"])}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.save(str(path / "tokenizer.json"))
  return model.eval()


@pytest.mark.parametrize("kind, tied", [("llama", False), ("llama", True), ("qwen2", False)])
def test_tiny_hf_checkpoints_give_transformers_logits(tmp_path, kind, tied):
  reference = _save_tiny(kind, tmp_path, tie_word_embeddings=tied)
  lm = pretrained.load_model(str(tmp_path))
  assert lm.config.qkv_bias == (kind == "qwen2") and lm.config.tied_head == tied
  tokens = np.random.default_rng(0).integers(0, TINY["vocab_size"], size=(2, 17))
  ours, _ = lm.model(jnp.asarray(tokens))
  with torch.no_grad():
    theirs = reference(torch.as_tensor(tokens)).logits.numpy()
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=1e-4, rtol=1e-4)


def test_smollm2_gguf_gives_transformers_logits(smollm2_lm):
  path = pretrained.packaged_path("smollm2-135m-instruct")
  lm = smollm2_lm
  c = lm.config
  assert (c.num_layers, c.width, c.ffn_hidden, c.num_heads, c.kv_heads, c.head) == (
      30, 576, 1536, 9, 3, 64)
  assert (c.rope_base, c.vocab_size, c.tied_head, c.qkv_bias) == (1e5, 49152, True, False)
  reference = transformers.AutoModelForCausalLM.from_pretrained(
      str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
  text = ("The notebook walks from gradient descent to fine-tuned language models; each "
          "chapter of it becomes code that a reader can run, change and check for themselves.")
  ids = lm.tokenizer.encode(text)[:32]
  assert len(ids) == 32
  ours, _ = lm.model(jnp.asarray([ids]))
  with torch.no_grad():
    theirs = reference(torch.as_tensor([ids])).logits.numpy()
  # Measured: max |ours - transformers| = 1.5e-4 on logits up to 33 (the same on 1 or 16
  # threads). It is float32 rounding over 30 layers, not a bug: against transformers in float64
  # ours is off by 1.6e-4 and transformers' own float32 by 4.9e-5. The bar sits just above.
  np.testing.assert_allclose(np.asarray(ours), theirs, atol=2e-4, rtol=0)
  # The GGUF's blocks stay quantized (the default), and a prompt of fewer than four tokens
  # takes the kernel's one-row form (a decode step's), not its four-row tiles: transformers'
  # logits at the first three positions are those of the three-token prompt.
  assert isinstance(lm.model.embed, quantized.QuantizedEmbedding)
  assert isinstance(lm.model.blocks[0].ffn.down, quantized.QuantizedLinear)
  short, _ = lm.model(jnp.asarray([ids[:3]]))
  np.testing.assert_allclose(np.asarray(short), theirs[:, :3], atol=2e-4, rtol=0)


def test_bad_checkpoints_are_named(tmp_path):
  _save_tiny("llama", tmp_path)
  tensors = hf_checkpoint.load_tensors(tmp_path)
  del tensors["model.layers.1.mlp.up_proj.weight"]
  config = hf_checkpoint.read_config(tmp_path)
  hf_checkpoint.write(tmp_path / "broken", tensors, config)
  (tmp_path / "broken" / "tokenizer.json").write_text((tmp_path / "tokenizer.json").read_text())
  with pytest.raises(ValueError, match=r"no tensor for parameter blocks\.1\.ffn\.up\.kernel"):
    pretrained.load_model(str(tmp_path / "broken"))
  config["model_type"] = "gpt_neox"
  hf_checkpoint.write(tmp_path / "neox", {}, config)
  with pytest.raises(ValueError, match="model_type 'gpt_neox' is not supported"):
    pretrained.load_model(str(tmp_path / "neox"))
  with pytest.raises(ValueError, match="expected one of"):
    pretrained.load_model(str(tmp_path / "nothing-here"))


@pytest.mark.parametrize("rslora", [False, True])
def test_a_peft_adapter_loads_with_peft_merged_logits(tmp_path, rslora):
  """load_model(base, adapter=<a folder peft wrote>) gives the logits of peft's merged model:
  A, B, scale (alpha / r, rsLoRA alpha / sqrt(r)) and the chosen modules all read right."""
  import peft  # pylint: disable=g-import-not-at-top
  base = _save_tiny("llama", tmp_path / "base")
  torch.manual_seed(1)
  config = peft.LoraConfig(r=4, lora_alpha=6, target_modules=["q_proj", "v_proj", "down_proj"],
                           init_lora_weights=False, use_rslora=rslora)  # B away from zero
  tuned = peft.get_peft_model(base, config)
  tuned.save_pretrained(tmp_path / "adapter")
  merged = tuned.merge_and_unload().eval()
  lm = pretrained.load_model(str(tmp_path / "base"), adapter=tmp_path / "adapter")
  tokens = np.random.default_rng(0).integers(0, TINY["vocab_size"], size=(2, 17))
  ours = np.asarray(lm.model(jnp.asarray(tokens))[0])
  with torch.no_grad():
    theirs = merged(torch.as_tensor(tokens)).logits.numpy()
    plain = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "base")(
        torch.as_tensor(tokens)).logits.numpy()
  assert np.abs(theirs - plain).max() > 0.1  # the adapter moves the logits
  # float32 on both sides: they differ by under 2e-5 on logits near 8; a wrong scale, a
  # transposed A or B, or a module left out moves them by more than 0.1
  np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-4)


def test_bad_adapters_are_named(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from research.finetune import export  # pylint: disable=g-import-not-at-top
  from research.nn import lora  # pylint: disable=g-import-not-at-top
  _save_tiny("llama", tmp_path / "base")
  lm = pretrained.load_model(str(tmp_path / "base"))
  lora.apply_lora(lm.model, rank=2)
  folder = export.write_adapter(lm.model, tmp_path / "adapter", "base")
  config = json.loads((folder / "adapter_config.json").read_text())
  load = lambda: pretrained.load_model(str(tmp_path / "base"), adapter=folder)
  for change, message in ((dict(use_dora=True), "use_dora is set"),
                          (dict(peft_type="IA3"), "peft_type 'IA3'"),
                          (dict(bias="all"), "bias 'all'")):
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=r"adapter_config\.json: " + message):
      load()
  (folder / "adapter_config.json").write_text(json.dumps(config))
  with pytest.raises(ValueError, match="one adapter folder at a time"):
    pretrained.load_model(str(tmp_path / "base"), adapter=f"{folder},{folder}")
  with pytest.raises(FileNotFoundError, match="no such folder"):
    pretrained.load_model(str(tmp_path / "base"), adapter=tmp_path / "nowhere")
  small = pretrained.load_model(str(tmp_path / "base"))
  small.model.blocks = small.model.blocks[:1]  # an adapter of a deeper model
  with pytest.raises(ValueError, match=r"model\.layers\.1\.\S+ is not a linear layer of this "
                                       r"1-layer model"):
    pretrained.apply_adapter(small.model, folder)
