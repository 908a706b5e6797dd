"""A tiny llama checkpoint with a word-level tokenizer and a chat template, written once."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

VOCAB = 64
# Words t0..t63; t1 ends a turn, t3 opens a user turn and t4 an assistant turn.
TEMPLATE = ("{% for m in messages %}{{ 't3' if m['role'] == 'user' else ('t5' if m['role'] == "
            "'system' else 't4') }} {{ m['content'] }} t1 {% endfor %}"
            "{% if add_generation_prompt %}t4 {% endif %}")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
  import tokenizers
  import torch
  import transformers
  path = tmp_path_factory.mktemp("tiny-llama")
  torch.manual_seed(0)
  config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, max_position_embeddings=128,
                                    rms_norm_eps=1e-6, rope_theta=1000.0,
                                    initializer_range=0.3)  # logits that can move
  transformers.LlamaForCausalLM(config).save_pretrained(path)
  vocab = {f"t{i}": i for i in range(VOCAB)}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "t1", "pad_token": "t0", "chat_template": TEMPLATE}))
  return path


def words(*ids) -> str:
  return " ".join(f"t{i}" for i in ids)


@pytest.fixture()
def dataset_dir(tmp_path):
  """An alpaca SFT set, a sharegpt set and a preference set over the tiny vocabulary."""
  sft = [{"instruction": words(10 + i % 5, 20), "input": words(30) if i % 2 else "",
          "output": words(40 + i % 5, 41, 42)} for i in range(12)]
  share = [{"conversations": [{"from": "human", "value": words(11)},
                              {"from": "gpt", "value": words(43)}]}]
  prefs = [{"instruction": words(12 + i % 3), "chosen": words(50, 51),
            "rejected": words(52, 53, 54)} for i in range(8)]
  (tmp_path / "sft.json").write_text(json.dumps(sft))
  (tmp_path / "share.json").write_text(json.dumps(share))
  (tmp_path / "prefs.json").write_text(json.dumps(prefs))
  (tmp_path / "dataset_info.json").write_text(json.dumps({
      "toy": {"file_name": "sft.json"},
      "share": {"file_name": "share.json", "formatting": "sharegpt"},
      "prefs": {"file_name": "prefs.json", "ranking": True}}))
  return tmp_path
