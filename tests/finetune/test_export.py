"""Exports load in transformers (merged) and peft (adapter) with our logits."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import peft  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position
import tokenizers  # pylint: disable=wrong-import-position
import torch  # pylint: disable=wrong-import-position
import transformers  # pylint: disable=wrong-import-position

from research import pretrained  # pylint: disable=wrong-import-position
from research.finetune import export  # pylint: disable=wrong-import-position
from research.nn import lora  # pylint: disable=wrong-import-position
from third_party import hf_names  # pylint: disable=wrong-import-position

TINY = dict(vocab_size=80, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
            rms_norm_eps=1e-6, rope_theta=1000.0,
            initializer_range=0.3)  # peaked attention: a RoPE or attention bug moves logits


def _base_dir(path, kind="llama", tied=False):
  torch.manual_seed(0)
  if kind == "llama":
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY,
                                                                   tie_word_embeddings=tied))
  else:
    model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**TINY,
                                                                   tie_word_embeddings=tied))
  model.save_pretrained(path)
  vocab = {f"t{i}": i for i in range(TINY["vocab_size"])}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.save(str(path / "tokenizer.json"))
  return path


def _tuned(base, target="all", rank=4, rslora=False):
  lm = pretrained.load_model(str(base))
  lora.apply_lora(lm.model, hf_names.LoraTarget(target), rank, alpha=3.0 * rank, rslora=rslora,
                  seed=1)
  key = jax.random.key(7)
  for i, (_, layer) in enumerate(lora.lora_layers(lm.model)):  # a trained-looking adapter
    layer.lora_b.set_value(0.05 * jax.random.normal(jax.random.fold_in(key, i),
                                                    layer.lora_b.shape))
  return lm


TOKENS = np.random.default_rng(0).integers(0, TINY["vocab_size"], size=(2, 11))


@pytest.mark.parametrize("kind, tied", [("llama", False), ("llama", True), ("qwen2", False)])
def test_merged_export_gives_our_logits_in_transformers(tmp_path, kind, tied):
  lm = _tuned(_base_dir(tmp_path / "base", kind, tied))
  ours = np.asarray(lm.model(jnp.asarray(TOKENS))[0])
  out = export.export(lm, tmp_path / "export")
  theirs = transformers.AutoModelForCausalLM.from_pretrained(str(out)).eval()
  with torch.no_grad():
    np.testing.assert_allclose(theirs(torch.as_tensor(TOKENS)).logits.numpy(), ours,
                               atol=1e-4, rtol=1e-4)
  reloaded = pretrained.load_model(str(out))
  np.testing.assert_allclose(np.asarray(reloaded.model(jnp.asarray(TOKENS))[0]), ours,
                             atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("target, rslora", [("all", False), ("q_proj,v_proj", True)])
def test_adapter_export_loads_in_peft(tmp_path, target, rslora):
  base = _base_dir(tmp_path / "base")
  lm = _tuned(base, target, rslora=rslora)
  ours = np.asarray(lm.model(jnp.asarray(TOKENS))[0])
  out = export.export(lm, tmp_path / "export", rslora=rslora)
  config = export.read_adapter_config(out / "adapter")
  assert config["r"] == 4 and config["use_rslora"] == rslora
  model = transformers.AutoModelForCausalLM.from_pretrained(str(base))
  model = peft.PeftModel.from_pretrained(model, str(out / "adapter")).eval()
  with torch.no_grad():
    theirs = model(torch.as_tensor(TOKENS)).logits.numpy()
  np.testing.assert_allclose(theirs, ours, atol=1e-4, rtol=1e-4)


def test_merge_then_unmerge_restores_the_base(tmp_path):
  lm = _tuned(_base_dir(tmp_path / "base"))
  before = np.asarray(lm.model(jnp.asarray(TOKENS))[0])
  kernel = np.asarray(lora.lora_layers(lm.model)[0][1].base.kernel[...])
  lora.merge_all(lm.model)
  np.testing.assert_allclose(np.asarray(lm.model(jnp.asarray(TOKENS))[0]), before, atol=1e-5)
  lora.unmerge_all(lm.model)
  np.testing.assert_allclose(np.asarray(lora.lora_layers(lm.model)[0][1].base.kernel[...]),
                             kernel, atol=1e-6)


def test_a_failed_export_keeps_the_previous_one(tmp_path, monkeypatch):
  lm = _tuned(_base_dir(tmp_path / "base"))
  out = export.export(lm, tmp_path / "export")
  before = sorted(p.name for p in out.iterdir())
  monkeypatch.setattr(export, "write_tokenizer", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
  with pytest.raises(OSError, match="disk full"):
    export.export(lm, tmp_path / "export")
  assert sorted(p.name for p in out.iterdir()) == before
  assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
