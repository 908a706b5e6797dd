"""A tiny random llama written as an HF directory (safetensors, tokenizer.json, a chat
template) that transformers and research.load_model both read: words t0..t63 are the tokens;
t1 ends a turn, t3 opens a user turn, t4 an assistant turn and t5 a system one."""

import json

VOCAB = 64
TEMPLATE = ("{% for m in messages %}{{ 't3' if m['role'] == 'user' else ('t5' if m['role'] == "
            "'system' else 't4') }} {{ m['content'] }} t1 {% endfor %}"
            "{% if add_generation_prompt %}t4 {% endif %}")


def write_tiny_llama(path, max_positions: int = 128):
  import tokenizers  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, max_position_embeddings=max_positions,
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


BYTE_SPECIALS = ("<|end|>", "<|user|>", "<|assistant|>", "<|system|>")
BYTE_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def write_tiny_byte_llama(path, max_positions: int = 256):
  """The same tiny llama over a byte-level vocabulary (GPT-2's and SmolLM2's kind, no
  merges): ids 0..255 are the bytes, then <|end|> (EOS) and the three role markers; it can
  spell any text, JSON included."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  vocab_size = 256 + len(BYTE_SPECIALS)
  config = transformers.LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=48,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, max_position_embeddings=max_positions,
                                    rms_norm_eps=1e-6, rope_theta=1000.0, initializer_range=0.3)
  transformers.LlamaForCausalLM(config).save_pretrained(path)
  byte_tokenizer().save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "<|end|>", "chat_template": BYTE_TEMPLATE}))
  return path


def byte_tokenizer():
  """The byte-level tokenizers.Tokenizer of write_tiny_byte_llama."""
  import tokenizers  # pylint: disable=g-import-not-at-top
  from tokenizers import decoders, models, pre_tokenizers  # pylint: disable=g-import-not-at-top
  alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
  tok = tokenizers.Tokenizer(models.BPE({c: i for i, c in enumerate(alphabet)}, []))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens(list(BYTE_SPECIALS))
  return tok
