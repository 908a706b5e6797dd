"""The export's GGUF files load in our loader and in transformers' GGUF reader with the merged
model's logits; the Modelfile beside them names the file and the chat format."""

import json
import os
import re

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
import pytest  # pylint: disable=wrong-import-position
import tokenizers  # pylint: disable=wrong-import-position
import torch  # pylint: disable=wrong-import-position
import transformers  # pylint: disable=wrong-import-position

from research import pretrained  # pylint: disable=wrong-import-position
from research.finetune import export  # pylint: disable=wrong-import-position
from research.nn import lora  # pylint: disable=wrong-import-position

TOKENS = np.random.default_rng(0).integers(0, 64, size=(2, 11))
UNIT = 2.0 ** -11  # float16's relative rounding (half an ulp)
# f32: the same float32 weights, one summation order apart. f16: each weight moves by <= UNIT
# relative; some six matmuls in a row (embedding, 2 x (attention, FFN), head) add up, with
# headroom, to 8 UNIT of the logits' scale. q8_0: a weight moves by <= half a step, 1/254 of
# its block's largest; the same chain, with headroom, gives 16/254 of the logits' scale.
TOLERANCE = {"f32": 1e-6, "f16": 8 * UNIT, "q8_0": 16 / 254}


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
  lm = pretrained.load_model(str(tiny_model_dir))
  lora.apply_lora(lm.model, lambda path: True, 4, 12.0, seed=1)
  key = jax.random.key(7)
  for i, (_, layer) in enumerate(lora.lora_layers(lm.model)):  # a trained-looking adapter
    layer.lora_b.set_value(0.05 * jax.random.normal(jax.random.fold_in(key, i),
                                                    layer.lora_b.shape))
  out = export.export(lm, tmp_path_factory.mktemp("gguf") / "export",
                      gguf_types=("f32", "f16", "q8_0"))
  merged = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
  with torch.no_grad():
    reference = merged(torch.as_tensor(TOKENS)).logits.numpy()
  return out, lm, reference


def _close(logits, reference, kind):
  scale = np.abs(reference).max()
  error = np.abs(logits - reference).max()
  assert error <= TOLERANCE[kind] * scale, (kind, error, scale)


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
def test_gguf_gives_the_merged_logits_in_our_loader(exported, kind):
  out, _, reference = exported
  lm = pretrained.load_model(str(out / f"model.{kind}.gguf"))
  _close(np.asarray(lm.model(jnp.asarray(TOKENS))[0]), reference, kind)


@pytest.mark.parametrize("kind", ["f32", "f16", "q8_0"])
def test_gguf_gives_the_merged_logits_in_transformers(exported, kind):
  out, lm, reference = exported
  model = transformers.AutoModelForCausalLM.from_pretrained(
      str(out), gguf_file=f"model.{kind}.gguf", dtype=torch.float32)
  with torch.no_grad():
    _close(model(torch.as_tensor(TOKENS)).logits.numpy(), reference, kind)
  tok = transformers.AutoTokenizer.from_pretrained(str(out), gguf_file=f"model.{kind}.gguf")
  text = "t3 t10 t11 t1 t4"
  assert tok(text, add_special_tokens=False).input_ids == lm.tokenizer.encode(text)


def test_q8_0_is_really_quantized(exported):
  out, _, _ = exported
  sizes = {k: (out / f"model.{k}.gguf").stat().st_size for k in ("f32", "f16", "q8_0")}
  assert sizes["q8_0"] < sizes["f16"] < sizes["f32"], sizes


def test_modelfile_names_the_gguf_and_the_turns(exported):
  out, _, _ = exported
  text = (out / "Modelfile").read_text()
  assert re.search(r"^FROM \./model\.f32\.gguf$", text, re.M)
  template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.M | re.S).group(1)
  assert "{{ .Content }}" in template and "t3 " in template and template.endswith("t4 ")
  assert re.search(r'^PARAMETER stop "t1"$', text, re.M)


CHATML = ("{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a tiny "
          "helper.<|im_end|>\n{% endif %}{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
          "{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def _byte_level_model(path):
  """A tiny llama whose tokenizer is byte-level BPE (as SmolLM2's and Qwen's are)."""
  tok = tokenizers.Tokenizer(tokenizers.models.BPE())
  tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = tokenizers.decoders.ByteLevel()
  trainer = tokenizers.trainers.BpeTrainer(
      vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
      initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  tok.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50 +
                          ["hello world, hello there"] * 50, trainer)
  torch.manual_seed(0)
  config = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=32,
                                    intermediate_size=64, num_hidden_layers=1,
                                    num_attention_heads=4, num_key_value_heads=2)
  transformers.LlamaForCausalLM(config).save_pretrained(path)
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "chat_template": CHATML}))
  return path


def test_a_byte_level_bpe_tokenizer_reads_the_same_in_transformers(tmp_path):
  lm = pretrained.load_model(str(_byte_level_model(tmp_path / "base")))
  out = export.export(lm, tmp_path / "export")
  text = "<|im_start|>user\nhello the quick fox, zebra!<|im_end|>\n"
  ours = pretrained.load_model(str(out / "model.f32.gguf")).tokenizer
  theirs = transformers.AutoTokenizer.from_pretrained(str(out), gguf_file="model.f32.gguf")
  assert ours.encode(text) == lm.tokenizer.encode(text)
  assert theirs(text, add_special_tokens=False).input_ids == lm.tokenizer.encode(text)
  assert ours.template == CHATML
  modelfile = (out / "Modelfile").read_text()
  assert 'SYSTEM """You are a tiny helper."""' in modelfile
  assert 'PARAMETER stop "<|im_end|>"' in modelfile
  assert "<|im_start|>{{ .Role }}" in modelfile


def test_an_unknown_gguf_type_is_named(exported, tmp_path):
  _, lm, _ = exported
  with pytest.raises(ValueError, match=r"GGUF type 'q4_k' is not one of f32, f16, q8_0"):
    export.export(lm, tmp_path / "export", gguf_types=("q4_k",))
  assert not list(tmp_path.iterdir())


def test_a_tied_qwen2_with_qkv_biases_reads_the_same_from_its_gguf(tmp_path):
  from tests.finetune import test_export  # pylint: disable=g-import-not-at-top
  lm = test_export._tuned(test_export._base_dir(tmp_path / "base", "qwen2", tied=True))  # pylint: disable=protected-access
  out = export.export(lm, tmp_path / "export")
  tokens = torch.as_tensor(test_export.TOKENS)
  with torch.no_grad():
    reference = transformers.AutoModelForCausalLM.from_pretrained(
        str(out), dtype=torch.float32)(tokens).logits.numpy()
    theirs = transformers.AutoModelForCausalLM.from_pretrained(
        str(out), gguf_file="model.f32.gguf", dtype=torch.float32)(tokens).logits.numpy()
  _close(theirs, reference, "f32")
  ours = pretrained.load_model(str(out / "model.f32.gguf"))
  ours = np.asarray(ours.model(jnp.asarray(test_export.TOKENS))[0])
  # JAX and torch sum in different orders: float32 rounding, a few ulps of the logits' scale.
  assert np.abs(ours - reference).max() <= 1e-5 * np.abs(reference).max()
