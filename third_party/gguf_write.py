"""Writes a llama-family model as a GGUF file (llama.cpp's, Ollama's and transformers' format)
with its tokenizer and chat template, through the `gguf` package's GGUFWriter.

  gguf_write.write(path, hf_tensors, hf_config, tokenizer, "f16")
"""

import json
import re

import numpy as np

from third_party import gguf_file
from third_party import hf_names

TYPES = ("f32", "f16", "q8_0")
# tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
_NORMAL, _CONTROL, _USER_DEFINED = 1, 3, 4
_FILE_TYPE = {"f32": 0, "f16": 1, "q8_0": 7}  # llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0


def vocabulary(tokenizer) -> dict:
  """tokens, token types and merges of a `tokenizers.Tokenizer`; `byte_level` says whether
  GGUF's "gpt2" model (byte-level BPE) encodes text as the tokenizer does."""
  spec = json.loads(tokenizer.to_str())
  model = spec["model"]
  size = tokenizer.get_vocab_size(with_added_tokens=True)
  tokens = [f"[PAD{i}]" for i in range(size)]  # holes in the ids get placeholder tokens
  for token, i in tokenizer.get_vocab(with_added_tokens=True).items():
    tokens[i] = token
  types = [_NORMAL] * size
  for added in spec.get("added_tokens", []):
    types[added["id"]] = _CONTROL if added.get("special") else _USER_DEFINED
  merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
  byte_level = model.get("type") == "BPE" and "ByteLevel" in json.dumps(spec.get(
      "pre_tokenizer"))
  return {"tokens": tokens, "types": types, "merges": merges, "byte_level": byte_level}


def _tensor(writer, name: str, value: np.ndarray, kind: str) -> None:
  import gguf  # pylint: disable=g-import-not-at-top
  # Norms and biases stay float32, as llama.cpp keeps them; q8_0 needs rows of 32-blocks.
  if value.ndim == 1 or kind == "f32":
    writer.add_tensor(name, value.astype(np.float32))
  elif kind == "q8_0" and value.shape[-1] % 32 == 0:
    q8 = gguf.GGMLQuantizationType.Q8_0
    data = gguf.quants.quantize(value.astype(np.float32), q8)
    writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=q8)
  else:
    writer.add_tensor(name, value.astype(np.float16))


def write(path, tensors: dict, config: dict, tokenizer, kind: str = "f32") -> None:
  """`tensors`: HF-named float32 arrays; `config`: the HF config.json dict (llama or qwen2);
  `tokenizer`: a research.text.pretrained.PretrainedTokenizer; `kind`: one of TYPES."""
  import gguf  # pylint: disable=g-import-not-at-top
  if kind not in TYPES:
    raise ValueError(f"GGUF type {kind!r} is not one of {', '.join(TYPES)}.")
  arch = config["model_type"]
  writer = gguf.GGUFWriter(str(path), arch)
  try:
    writer.add_file_type(_FILE_TYPE[kind])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    vocab = vocabulary(tokenizer.tokenizer)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for add, token_id in ((writer.add_bos_token_id, tokenizer.bos_id),
                          (writer.add_eos_token_id, tokenizer.eos_id),
                          (writer.add_pad_token_id, tokenizer.pad_id)):
      if token_id is not None:
        add(token_id)
    writer.add_add_bos_token(False)  # our chat templates write the BOS token themselves
    if tokenizer.template:
      writer.add_chat_template(tokenizer.template)
    for hf_name, value in tensors.items():
      name = hf_names.hf_to_gguf(hf_name)
      if arch == "llama" and name.endswith(("attn_q.weight", "attn_k.weight")):
        # llama.cpp rotates adjacent pairs: its converter interleaves each head's halves.
        heads = config["num_attention_heads" if "attn_q" in name else "num_key_value_heads"]
        value = gguf_file.permute_rope_rows(value, heads)
      _tensor(writer, name, np.asarray(value), kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
  finally:
    writer.close()


_MARK = "\x01MESSAGE\x01"  # a content no template changes, to find what surrounds it


def _role_template(tokenizer) -> str | None:
  """Ollama's Go template for a template that wraps each message in fixed text per role:
  each role's text is found by rendering one message whose content is a marker."""
  def render(messages, prompt=False):
    return tokenizer.apply_chat_template(messages, add_generation_prompt=prompt)
  try:
    parts = {}
    for role in ("system", "user", "assistant"):
      text = render([{"role": role, "content": _MARK}])
      if text.count(_MARK) != 1:
        return None
      parts[role] = text.split(_MARK)
    one = [{"role": "user", "content": _MARK}]
    generation = render(one, True)[len(render(one)):]
  except ValueError:
    return None
  branch = lambda role: "{0}{{{{ .Content }}}}{1}".format(*parts[role])
  return ('{{- range .Messages }}{{ if eq .Role "system" }}' + branch("system") +
          '{{ else if eq .Role "user" }}' + branch("user") + "{{ else }}" +
          branch("assistant") + "{{ end }}{{ end }}" + generation)


_CHATML = ("{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
           "{{- range .Messages }}{{ if ne .Role \"system\" }}<|im_start|>{{ .Role }}\n"
           "{{ .Content }}<|im_end|>\n{{ end }}{{ end }}<|im_start|>assistant\n")


def modelfile(gguf_name: str, tokenizer) -> str:
  """An Ollama Modelfile: FROM the GGUF beside it, TEMPLATE (Go template syntax) when the
  chat template maps to one, SYSTEM for a template's default system message, PARAMETER
  stop for the end-of-turn token."""
  lines = [f"FROM ./{gguf_name}"]
  template, stop, system = None, tokenizer.eos_token, None
  if tokenizer.template and "<|im_start|>" in tokenizer.template:
    template, stop = _CHATML, "<|im_end|>"
    try:
      shown = tokenizer.apply_chat_template([{"role": "user", "content": _MARK}])
    except ValueError:
      shown = ""
    match = re.search(r"<\|im_start\|>system\n(.*?)<\|im_end\|>", shown, re.S)
    system = match.group(1) if match else None
  elif tokenizer.template:
    template = _role_template(tokenizer)
  if template:
    lines.append(f'TEMPLATE """{template}"""')
  if system:
    lines.append(f'SYSTEM """{system}"""')
  if stop:
    lines.append(f"PARAMETER stop {json.dumps(stop)}")
  return "\n".join(lines) + "\n"
