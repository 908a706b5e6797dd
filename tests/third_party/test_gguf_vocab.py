"""A GGUF vocabulary becomes a byte-level BPE tokenizer: its merges apply, control tokens are
matched whole, and a vocabulary of another kind is refused with the file's name."""

import types

import pytest
from tokenizers import pre_tokenizers

from third_party import gguf_vocab

BYTES = sorted(pre_tokenizers.ByteLevel.alphabet())  # the 256 byte symbols, "Ġ" is a space


def _gguf(kind="gpt2"):
  tokens = BYTES + ["ab", "Ġab", "<|end|>", "<tool>"]
  n = len(BYTES)
  return types.SimpleNamespace(path="tiny.gguf", metadata={
      "tokenizer.ggml.model": kind,
      "tokenizer.ggml.tokens": tokens,
      "tokenizer.ggml.merges": ["a b", "Ġ ab"],
      "tokenizer.ggml.token_type": [1] * n + [1, 1, 3, 4]})  # normal, normal, control, user


def test_merges_apply_and_special_tokens_are_whole():
  tok = gguf_vocab.tokenizer_from_gguf(_gguf())
  vocab = tok.get_vocab()
  ids = tok.encode("ab ab<|end|><tool>", add_special_tokens=False).ids
  assert ids == [vocab["ab"], vocab["Ġab"], vocab["<|end|>"], vocab["<tool>"]]
  assert tok.decode(ids, skip_special_tokens=False) == "ab ab<|end|><tool>"
  assert tok.decode(tok.encode("ba").ids) == "ba"  # no merge for "b a": two byte tokens
  assert len(tok.encode("ba").ids) == 2


def test_other_vocabularies_are_refused():
  with pytest.raises(ValueError, match=r"tiny.gguf: tokenizer.ggml.model is 'llama'; only"):
    gguf_vocab.tokenizer_from_gguf(_gguf("llama"))
