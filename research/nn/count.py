"""Parameters and FLOPs from the config alone (the notebook's parameter chart).

GPT-2 small with a tied head: 124,439,808 parameters.
"""

from research.nn.config import ModelConfig


def parameter_table(config: ModelConfig) -> dict[str, int]:
  """Parameters per part of the model, in closed form."""
  d, f, v = config.width, config.ffn_hidden, config.vocab_size
  h, g, k, n = config.num_heads, config.kv_heads, config.head, config.num_layers
  norm = d * (2 if config.norm == "layernorm" and config.norm_bias else 1)
  attention = d * (h * k) + 2 * d * (g * k) + (h * k) * d  # W_Q, W_K, W_V, W_O
  attention += config.qkv_bias * (h * k + 2 * g * k) + config.out_bias * d
  if config.ffn == "swiglu":
    ffn = 3 * d * f + config.ffn_bias * (2 * f + d)  # gate, up, down
  else:
    ffn = 2 * d * f + config.ffn_bias * (f + d)  # up, down
  return {
      "token embedding": v * d,
      "position embedding": config.max_length * d if config.position == "learned" else 0,
      "attention": n * attention,
      "ffn": n * ffn,
      "norms": (2 * n + 1) * norm,
      "output head": 0 if config.tied_head else v * d,
  }


def parameter_count(config: ModelConfig) -> int:
  return sum(parameter_table(config).values())


def flops_per_token(config: ModelConfig, context_length: int, training: bool = True) -> float:
  """Matmul FLOPs per token: 2 per multiply-add forward, x3 with the backward pass.

  Counts every weight matmul (the head too, tied or not, but no embedding lookups) and the two
  attention matmuls q k^T and att v over the full L x L square, as PaLM's MFU does.
  """
  table = parameter_table(config)
  matmul_params = table["attention"] + table["ffn"] + config.vocab_size * config.width
  attention = 2 * 2 * config.num_layers * config.num_heads * config.head * context_length
  forward = 2 * matmul_params + attention
  return float(3 * forward if training else forward)
