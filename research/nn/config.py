"""One config for GPT-2-style and Llama-style decoder-only models.

GPT-2 small: ModelConfig(vocab_size=50257, num_layers=12, width=768, num_heads=12,
max_length=1024) with every default. SmolLM2-135M: see `smollm2_135m()`.
"""

import dataclasses

POSITIONS = ("learned", "sinusoidal", "rope", "alibi", "none")
NORMS = ("layernorm", "rmsnorm")
FFNS = ("gelu", "gelu_tanh", "swiglu")
ATTENTIONS = ("explicit", "xla")
KERNELS = ("notebook", "fused")
NORM_POSITIONS = ("pre", "post")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  vocab_size: int
  num_layers: int
  width: int                       # D
  num_heads: int                   # H
  num_kv_heads: int | None = None  # G; None -> H (plain multi-head attention)
  head_width: int | None = None    # K; None -> D // H
  ffn_width: int | None = None     # F; None -> 4 D
  max_length: int = 1024           # rows of the learned / sinusoidal position table
  position: str = "learned"
  rope_base: float = 10000.0
  norm: str = "layernorm"
  norm_eps: float = 1e-5
  norm_bias: bool = True           # LayerNorm's beta; RMSNorm never has one
  ffn: str = "gelu"
  qkv_bias: bool = True
  out_bias: bool = True
  ffn_bias: bool = True
  tied_head: bool = True
  dropout: float = 0.0
  attention: str = "explicit"      # "xla": jax.nn.dot_product_attention (with either kernels)
  kernels: str = "fused"           # "notebook": the textbook forms; "fused": nn/fused.py's twins
  norm_position: str = "pre"       # "pre": x + f(norm(x)) (GPT-2); "post": norm(x + f(x)) (BERT)
  causal: bool = True              # False: every query sees every key (an encoder)
  init_std: float = 0.02           # residual projections get init_std / sqrt(2 num_layers)

  def __post_init__(self):
    checks = [("position", self.position, POSITIONS), ("norm", self.norm, NORMS),
              ("ffn", self.ffn, FFNS), ("attention", self.attention, ATTENTIONS),
              ("kernels", self.kernels, KERNELS),
              ("norm_position", self.norm_position, NORM_POSITIONS)]
    for field, value, allowed in checks:
      if value not in allowed:
        raise ValueError(f"ModelConfig.{field}={value!r}: expected one of {allowed}.")
    if self.num_heads % self.kv_heads:
      raise ValueError(f"ModelConfig.num_kv_heads={self.kv_heads} must divide "
                       f"num_heads={self.num_heads}.")
    if self.head_width is None and self.width % self.num_heads:
      raise ValueError(f"ModelConfig.width={self.width} is not divisible by "
                       f"num_heads={self.num_heads}; set head_width.")
    if self.position == "rope" and self.head % 2:
      raise ValueError(f"RoPE needs an even head width, got {self.head}.")
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"ModelConfig.dropout={self.dropout}: expected 0 <= p < 1.")

  @property
  def kv_heads(self) -> int:
    return self.num_kv_heads or self.num_heads

  @property
  def head(self) -> int:
    return self.head_width or self.width // self.num_heads

  @property
  def ffn_hidden(self) -> int:
    return self.ffn_width or 4 * self.width

  def replace(self, **changes) -> "ModelConfig":
    return dataclasses.replace(self, **changes)


def gpt2_small(**changes) -> ModelConfig:
  return ModelConfig(vocab_size=50257, num_layers=12, width=768, num_heads=12,
                     max_length=1024, **changes)


def llama(vocab_size, num_layers, width, num_heads, num_kv_heads, ffn_width, rope_base=1e4,
          norm_eps=1e-5, tied_head=False, qkv_bias=False, max_length=2048, **changes):
  """A Llama-family config (qwen2: qkv_bias=True): RoPE, RMSNorm, SwiGLU, no other biases."""
  return ModelConfig(vocab_size=vocab_size, num_layers=num_layers, width=width,
                     num_heads=num_heads, num_kv_heads=num_kv_heads, ffn_width=ffn_width,
                     max_length=max_length, position="rope", rope_base=rope_base,
                     norm="rmsnorm", norm_eps=norm_eps, norm_bias=False, ffn="swiglu",
                     qkv_bias=qkv_bias, out_bias=False, ffn_bias=False, tied_head=tied_head,
                     **changes)


def smollm2_135m(**changes) -> ModelConfig:
  return llama(vocab_size=49152, num_layers=30, width=576, num_heads=9, num_kv_heads=3,
               ffn_width=1536, rope_base=1e5, tied_head=True, max_length=8192, **changes)
