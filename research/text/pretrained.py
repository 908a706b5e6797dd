"""Tokenizers that pretrained checkpoints ship: a GGUF file's vocabulary or an HF directory's
tokenizer.json, with the special tokens and chat template that come with them."""

import dataclasses
import json
from pathlib import Path

import tokenizers

from research.text import chat_template


@dataclasses.dataclass
class PretrainedTokenizer:
  tokenizer: tokenizers.Tokenizer
  bos_token: str | None = None
  eos_token: str | None = None
  pad_token: str | None = None
  template: str | None = None  # the Jinja chat template, if the checkpoint has one
  template_source: str | None = None  # the file it came from, named when it fails

  @classmethod
  def from_gguf(cls, gguf) -> "PretrainedTokenizer":
    """From a GGUF path or an opened `third_party.gguf_file.GgufFile`."""
    from third_party import gguf_file  # pylint: disable=g-import-not-at-top
    from third_party import gguf_vocab  # pylint: disable=g-import-not-at-top
    if not isinstance(gguf, gguf_file.GgufFile):
      gguf = gguf_file.read(gguf)
    meta = gguf.metadata
    tokens = gguf.required("tokenizer.ggml.tokens")
    for key in ("tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                "tokenizer.ggml.padding_token_id"):
      if key in meta and not 0 <= meta[key] < len(tokens):
        raise ValueError(f"{gguf.path}: {key} is {meta[key]}, past the {len(tokens)} tokens "
                         "of tokenizer.ggml.tokens.")
    token = lambda key: tokens[meta[key]] if key in meta else None
    return cls(gguf_vocab.tokenizer_from_gguf(gguf),
               bos_token=token("tokenizer.ggml.bos_token_id"),
               eos_token=token("tokenizer.ggml.eos_token_id"),
               pad_token=token("tokenizer.ggml.padding_token_id"),
               template=meta.get("tokenizer.chat_template"),
               template_source=f"{gguf.path} (tokenizer.chat_template)")

  @classmethod
  def from_hf_dir(cls, directory) -> "PretrainedTokenizer":
    """From an HF model directory: tokenizer.json plus tokenizer_config.json."""
    from third_party import hf_checkpoint  # pylint: disable=g-import-not-at-top
    directory = Path(directory)
    path = directory / "tokenizer.json"
    if not path.is_file():
      raise FileNotFoundError(f"{path}: no tokenizer.json in the model directory.")
    spec = hf_checkpoint.read_json_object(path)
    if not isinstance(spec.get("model"), dict):
      raise ValueError(f"{path}: no \"model\" section (the vocabulary and how it splits words).")
    try:
      tokenizer = tokenizers.Tokenizer.from_str(json.dumps(spec))
    except Exception as e:  # tokenizers raises a bare Exception for a spec it cannot build
      raise ValueError(f"{path}: not a tokenizer that the tokenizers library can build "
                       f"({e}).") from e
    config_path = directory / "tokenizer_config.json"
    config = hf_checkpoint.read_json_object(config_path) if config_path.is_file() else {}
    template, template_source = config.get("chat_template"), str(config_path)
    template_file = directory / "chat_template.jinja"
    if template is None and template_file.is_file():
      template, template_source = template_file.read_text(), str(template_file)
    token = lambda key: (config.get(key) or {}).get("content") if isinstance(
        config.get(key), dict) else config.get(key)
    for key in ("bos_token", "eos_token", "pad_token"):
      if token(key) is not None and tokenizer.token_to_id(token(key)) is None:
        raise ValueError(f"{config_path}: {key} {token(key)!r} is not in the vocabulary of "
                         f"{path.name}.")
    return cls(tokenizer, bos_token=token("bos_token"), eos_token=token("eos_token"),
               pad_token=token("pad_token"), template=template, template_source=template_source)

  @property
  def vocab_size(self) -> int:
    return self.tokenizer.get_vocab_size(with_added_tokens=True)

  def token_id(self, token: str | None) -> int | None:
    return None if token is None else self.tokenizer.token_to_id(token)

  @property
  def bos_id(self):
    return self.token_id(self.bos_token)

  @property
  def eos_id(self):
    return self.token_id(self.eos_token)

  @property
  def pad_id(self):
    return self.token_id(self.pad_token)

  def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
    return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

  def decode(self, ids, skip_special_tokens: bool = False) -> str:
    return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

  def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True,
                          **extra) -> str:
    if self.template is None:
      raise ValueError("this tokenizer has no chat template.")
    return chat_template.render(self.template, messages,
                                add_generation_prompt=add_generation_prompt,
                                bos_token=self.bos_token or "", eos_token=self.eos_token or "",
                                source=self.template_source, **extra)
