"""Neural-network building blocks as pure-functional `flax.nnx` modules.

Import the module you need, e.g. `from research.nn import transformer`; nothing heavy is
imported eagerly here.

  config       ModelConfig: one description of GPT-2-style, Llama-style and BERT-style models
  activations  sigmoid, tanh, ReLU, GELU (tanh and erf forms), SiLU and their derivatives
  embeddings   token embedding (a lookup equal to one-hot @ matrix)
  positions    learned, sinusoidal, RoPE (HF rotate-half) and ALiBi positions
  attention    scaled dot-product multi-head attention: causal or padding mask, grouped KV
               heads, a KV cache
  ffn          GELU MLP and SwiGLU
  norms        LayerNorm and RMSNorm
  dropout      inverted dropout with an explicit key (off at eval)
  transformer  pre-norm (or post-norm) residual blocks and the decoder-only language model
  losses       cross-entropy as -log p(correct token), answer log-probs, DPO's loss
  fused        the fast forms, each beside its notebook twin (ModelConfig.kernels="fused")
  count        closed-form parameter count and FLOPs per token
"""
