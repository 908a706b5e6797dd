"""How HF llama-family checkpoints and GGUF files name the tensors of our Transformer.

Our paths follow the roles (blocks.3.attn.query.kernel); nnx.Linear stores kernels as
(in, out) where HF stores weights as (out, in), hence the transposes ("T").
"""

import re

# HF module name inside model.layers.{i} -> our module path inside blocks.{i}.
HF_BLOCK_MODULES = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value", "self_attn.o_proj": "attn.out",
    "mlp.gate_proj": "ffn.gate", "mlp.up_proj": "ffn.up", "mlp.down_proj": "ffn.down",
}
HF_BLOCK_NORMS = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
HF_TOP = {"model.embed_tokens.weight": ("embed.embedding", ""),
          "model.norm.weight": ("final_norm.scale", ""),
          "lm_head.weight": ("head.kernel", "T")}
GGUF_BLOCK = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
              "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
              "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
              "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm"}
GGUF_TOP = {"token_embd.weight": "model.embed_tokens.weight",
            "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
IGNORED = re.compile(r".*rotary_emb\.inv_freq$")

_OURS_TO_HF_MODULE = {ours: hf for hf, ours in HF_BLOCK_MODULES.items()}
# Short names users give in lora_target (LLaMA-Factory / PEFT) and the HF modules they mean.
SHORT_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def hf_to_path(name: str) -> tuple[str, str]:
  """('blocks.3.attn.query.kernel', 'T') for 'model.layers.3.self_attn.q_proj.weight'."""
  if name in HF_TOP:
    return HF_TOP[name]
  match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
  if match:
    layer, module, kind = match.groups()
    if module in HF_BLOCK_MODULES:
      leaf, how = ("kernel", "T") if kind == "weight" else ("bias", "")
      return f"blocks.{layer}.{HF_BLOCK_MODULES[module]}.{leaf}", how
    if module in HF_BLOCK_NORMS and kind == "weight":
      return f"blocks.{layer}.{HF_BLOCK_NORMS[module]}.scale", ""
  raise KeyError(name)


def path_to_hf(path: str) -> tuple[str, str]:
  """The inverse of `hf_to_path`."""
  for name, (ours, how) in HF_TOP.items():
    if ours == path:
      return name, how
  match = re.fullmatch(r"blocks\.(\d+)\.(.+)\.(kernel|bias|scale)", path)
  if match:
    layer, module, leaf = match.groups()
    if module in _OURS_TO_HF_MODULE and leaf in ("kernel", "bias"):
      kind, how = ("weight", "T") if leaf == "kernel" else ("bias", "")
      return f"model.layers.{layer}.{_OURS_TO_HF_MODULE[module]}.{kind}", how
    for hf, ours in HF_BLOCK_NORMS.items():
      if ours == module and leaf == "scale":
        return f"model.layers.{layer}.{hf}.weight", ""
  raise KeyError(path)


def module_to_hf(path: str) -> str:
  """'model.layers.3.self_attn.q_proj' for the linear at 'blocks.3.attn.query'."""
  match = re.fullmatch(r"blocks\.(\d+)\.(.+)", path)
  if match and match.group(2) in _OURS_TO_HF_MODULE:
    return f"model.layers.{match.group(1)}.{_OURS_TO_HF_MODULE[match.group(2)]}"
  raise KeyError(path)


def gguf_to_hf(name: str) -> str:
  if name in GGUF_TOP:
    return GGUF_TOP[name]
  match = re.fullmatch(r"blk\.(\d+)\.([a-z_]+)\.(weight|bias)", name)
  if match and match.group(2) in GGUF_BLOCK:
    return f"model.layers.{match.group(1)}.{GGUF_BLOCK[match.group(2)]}.{match.group(3)}"
  raise KeyError(name)


def hf_to_gguf(name: str) -> str:
  """The inverse of `gguf_to_hf`."""
  for gguf, hf in GGUF_TOP.items():
    if hf == name:
      return gguf
  match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", name)
  for gguf, hf in GGUF_BLOCK.items():
    if match and match.group(2) == hf:
      return f"blk.{match.group(1)}.{gguf}.{match.group(3)}"
  raise KeyError(name)


class LoraTarget:
  """LLaMA-Factory's `lora_target` as a predicate on our module paths (blocks.3.attn.query).

  "all": every linear of every block; "q_proj,v_proj": those short names; anything else is a
  regular expression matched against the whole HF module name (model.layers.3.self_attn.q_proj).
  """

  def __init__(self, target: str):
    self.target = target.strip()
    names = [t.strip() for t in self.target.split(",") if t.strip()]
    self.names = names if names and all(n in SHORT_NAMES for n in names) else None
    self.pattern = None
    if self.target != "all" and self.names is None:
      try:
        self.pattern = re.compile(self.target)
      except re.error as e:
        raise ValueError(f"lora_target={self.target!r}: neither 'all', a comma list of "
                         f"{SHORT_NAMES}, nor a valid regular expression ({e}).") from e

  def __call__(self, path: str) -> bool:
    if self.target == "all":
      return True
    name = module_to_hf(path)
    if self.names is not None:
      return name.rsplit(".", 1)[-1] in self.names
    return self.pattern.fullmatch(name) is not None

  def __repr__(self):
    return f"lora_target={self.target!r}"
