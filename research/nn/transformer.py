"""Residual blocks and the decoder-only language model, as the notebook draws them.

  x = embed(tokens) (+ positions)
  pre-norm (GPT-2, Llama):   x <- x + attn(norm(x));   x <- x + ffn(norm(x))
  post-norm (BERT):          x <- norm(x + attn(x));   x <- norm(x + ffn(x))
  logits = head(norm(x))     (head = embed^T when tied; post-norm has no final norm)

Dropout (with its 1/(1-p) scaling, `dropout.py`) acts on each branch before the residual sum.

Parameter names follow the roles (embed, blocks.i.attn.query/key/value/out, ffn.up/gate/down,
attn_norm, ffn_norm, final_norm, head) so a loader can map HF checkpoints onto them.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import attention as attention_lib
from research.nn import dropout as dropout_lib
from research.nn import embeddings
from research.nn import ffn as ffn_lib
from research.nn import fused
from research.nn import norms
from research.nn import positions as positions_lib
from research.nn.config import ModelConfig


class Block(nnx.Module):
  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.rate, self.post_norm = config.dropout, config.norm_position == "post"
    self.attn_norm = norms.make_norm(config)
    self.attn = attention_lib.Attention(config, rngs=rngs)
    self.ffn_norm = norms.make_norm(config)
    self.ffn = ffn_lib.make_ffn(config, rngs)

  def __call__(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None, mask_BxLxS=None):
    """Returns (x_BxLxD, new_cache); `mask_BxLxS` replaces the causal mask (an encoder's)."""
    key = dropout_lib.site_key
    drop = lambda y, site: dropout_lib.dropout(y, self.rate, key(dropout_key, site))
    if self.post_norm:
      y, cache = self.attn(x_BxLxD, positions_BxL, cache, key(dropout_key, 0), mask_BxLxS)
      x_BxLxD = self.attn_norm(x_BxLxD + drop(y, 1))  # x <- norm(x + attn(x))
      x_BxLxD = self.ffn_norm(x_BxLxD + drop(self.ffn(x_BxLxD), 2))  # x <- norm(x + ffn(x))
      return x_BxLxD, cache
    y, cache = self.attn(self.attn_norm(x_BxLxD), positions_BxL, cache, key(dropout_key, 0),
                         mask_BxLxS)
    x_BxLxD = x_BxLxD + drop(y, 1)  # x <- x + attn(norm(x))
    x_BxLxD = x_BxLxD + drop(self.ffn(self.ffn_norm(x_BxLxD)), 2)  # x <- x + ffn(norm(x))
    return x_BxLxD, cache


class Transformer(nnx.Module):
  """logits_BxLxV, cache = model(tokens_BxL, positions_BxL=None, cache=None, dropout_key=None).

  Dropout is on only when a `dropout_key` is given (training); `cache` comes from
  `init_cache` and is returned updated. With a cache the default positions are
  slot - offset_b: a row left-padded by offset_b tokens starts at 0 at its first real token.
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.config = config
    self.embed = embeddings.Embedding(config.vocab_size, config.width, rngs=rngs,
                                      std=config.init_std)
    if config.position == "learned":
      self.positions = positions_lib.LearnedPositions(config.max_length, config.width,
                                                      rngs=rngs, std=config.init_std)
    self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
    if config.norm_position == "pre":
      self.final_norm = norms.make_norm(config)
    if not config.tied_head:
      self.head = nnx.Linear(config.width, config.vocab_size, use_bias=False, rngs=rngs,
                             kernel_init=nnx.initializers.normal(config.init_std))

  def __call__(self, tokens_BxL, positions_BxL=None, cache=None, dropout_key=None, at_B=None):
    """(logits_BxLxV float32, new cache); with `at_B` only the logits at position at_B[b] of
    each row (B x 1 x V): a prefill needs the last prompt token's, and the head is the
    largest matrix."""
    b, l = tokens_BxL.shape
    if positions_BxL is None:
      positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
      if cache is not None:
        positions_BxL = cache["index"] + positions_BxL - cache["offset"][:, None]
    x_BxLxD = self.embed_tokens(tokens_BxL, positions_BxL, dropout_key)
    return self.trunk(x_BxLxD, positions_BxL, cache, dropout_key, at_B=at_B)

  def hidden(self, tokens_BxL, dropout_key=None, remat=False):
    """The final-normed states the head reads (B x L x D), without the head: for a loss that
    applies the head a chunk of rows at a time (`fused.chunked_cross_entropy`). With remat=True
    the backward pass recomputes each block instead of keeping its activations."""
    b, l = tokens_BxL.shape
    positions_BxL = jnp.broadcast_to(jnp.arange(l, dtype=jnp.int32), (b, l))
    x_BxLxD = self.embed_tokens(tokens_BxL, positions_BxL, dropout_key)
    return self.trunk(x_BxLxD, positions_BxL, None, dropout_key, head=False, remat=remat)[0]

  def head_logits(self, x_NxD):
    """Logits of final-normed states, float32 (the tied embedding or the untied head)."""
    head = self.embed.attend if self.config.tied_head else self.head  # x E^T or x W_head
    if self.config.kernels == "fused":
      return fused.tokens_first(head, x_NxD).astype(jnp.float32)
    return head(x_NxD).astype(jnp.float32)

  def embed_tokens(self, tokens_BxL, positions_BxL, dropout_key=None):
    config = self.config
    x_BxLxD = self.embed(tokens_BxL)
    if config.position == "learned":  # left padding (negative positions) reads row 0
      x_BxLxD = x_BxLxD + self.positions(jnp.maximum(positions_BxL, 0))
    elif config.position == "sinusoidal":
      x_BxLxD = x_BxLxD + positions_lib.sinusoidal(positions_BxL, config.width)
    return dropout_lib.dropout(x_BxLxD, config.dropout,
                               dropout_lib.site_key(dropout_key, config.num_layers))

  def trunk(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None, head=True,
            remat=False, at_B=None):
    """Blocks, final norm and head on embedded inputs: (logits_BxLxV float32, new cache);
    with head=False the final-normed states instead of the logits; with remat=True (and no
    cache) each block is recomputed in the backward pass (`fused.recomputed_block`)."""
    new_layers = []
    for i, block in enumerate(self.blocks):
      layer_cache = None
      if cache is not None:  # the slot to write and the rows' offsets, shared by the layers
        layer_cache = {**cache["layers"][i], "index": cache["index"], "offset": cache["offset"]}
      key = dropout_lib.site_key(dropout_key, i)
      if remat and cache is None:
        x_BxLxD = fused.recomputed_block(block, x_BxLxD, positions_BxL, key)
      else:
        x_BxLxD, layer_cache = block(x_BxLxD, positions_BxL, layer_cache, key)
      new_layers.append(layer_cache)
    if self.config.norm_position == "pre":
      x_BxLxD = self.final_norm(x_BxLxD)
    new_cache = None
    if cache is not None:
      new_cache = {"index": cache["index"] + x_BxLxD.shape[1], "offset": cache["offset"],
                   "layers": new_layers}
    if not head:
      return x_BxLxD, new_cache
    if at_B is not None:
      x_BxLxD = jnp.take_along_axis(x_BxLxD, at_B[:, None, None], axis=1)
    return self.head_logits(x_BxLxD), new_cache


def init_cache(config: ModelConfig, batch: int, length: int, dtype=jnp.float32,
               offset_B=None):
  """An empty KV cache of `length` slots for every layer. "index" is the next slot to write
  (all rows at once); "offset" (B,) is each row's left padding, zeros by default."""
  shape = (batch, length, config.kv_heads, config.head)
  layer = lambda: {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}
  offset_B = jnp.zeros((batch,), jnp.int32) if offset_B is None else offset_B
  return {"index": jnp.zeros((), jnp.int32), "offset": jnp.asarray(offset_B, jnp.int32),
          "layers": [layer() for _ in range(config.num_layers)]}


def abstract_model(config: ModelConfig) -> Transformer:
  """The model's structure with ShapeDtypeStructs for leaves: nothing is allocated."""
  return nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
