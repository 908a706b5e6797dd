"""Neural-network building blocks as pure-functional `flax.nnx` modules.

Import the module you need, e.g. `from research.nn import transformer`; nothing heavy is
imported eagerly here.

  config       ModelConfig: one description of GPT-2-style and Llama-style models
  embeddings   token embedding (a lookup equal to one-hot @ matrix)
  positions    learned, sinusoidal, RoPE (HF rotate-half) and ALiBi positions
  attention    causal multi-head attention with grouped KV heads and a KV cache
  ffn          GELU MLP and SwiGLU
  norms        LayerNorm and RMSNorm
  dropout      inverted dropout with an explicit key (off at eval)
  transformer  pre-norm blocks and the decoder-only language model
  count        closed-form parameter count and FLOPs per token
"""
