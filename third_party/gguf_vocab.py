"""A `tokenizers.Tokenizer` built from the vocabulary and merges a GGUF file carries."""

import tokenizers
from tokenizers import decoders
from tokenizers import models
from tokenizers import pre_tokenizers

from third_party import gguf_file

# tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
_CONTROL = 3
_USER_DEFINED = 4


def tokenizer_from_gguf(gguf) -> tokenizers.Tokenizer:
  """Byte-level BPE (GGUF's "gpt2" tokenizer model: GPT-2, Llama 3, SmolLM, Qwen2).

  `gguf` is a `third_party.gguf_file.GgufFile`. Control and user-defined tokens become
  special tokens, matched whole before BPE runs, as in the tokenizer the file came from.
  """
  meta = gguf.metadata
  kind = meta.get("tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"{gguf.path}: tokenizer.ggml.model is {kind!r}; only byte-level BPE "
                     "('gpt2') vocabularies are supported.")
  tokens = gguf_file.required(gguf, "tokenizer.ggml.tokens")
  # A vocabulary without merges (one written from a word-level tokenizer) has none to store.
  merges = [tuple(m.split(" ", 1)) for m in meta.get("tokenizer.ggml.merges", [])]
  vocab = {token: i for i, token in enumerate(tokens)}
  tok = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False,
                                        byte_fallback=False))
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.decoder = decoders.ByteLevel()
  types = meta.get("tokenizer.ggml.token_type", [])
  specials = [tokenizers.AddedToken(tokens[i], special=True, normalized=False)
              for i, t in enumerate(types) if t in (_CONTROL, _USER_DEFINED)]
  tok.add_special_tokens(specials)
  return tok
