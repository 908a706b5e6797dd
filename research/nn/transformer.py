"""Pre-norm decoder blocks and the decoder-only language model.

  x = embed(tokens) (+ positions)          x <- x + attn(norm(x))      x <- x + ffn(norm(x))
  logits = head(norm(x))                   (head = embed^T when tied)

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
from research.nn import norms
from research.nn import positions as positions_lib
from research.nn.config import ModelConfig


class Block(nnx.Module):
  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.rate = config.dropout
    self.attn_norm = norms.make_norm(config)
    self.attn = attention_lib.Attention(config, rngs=rngs)
    self.ffn_norm = norms.make_norm(config)
    self.ffn = ffn_lib.make_ffn(config, rngs)

  def __call__(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None):
    key = dropout_lib.site_key
    y, cache = self.attn(self.attn_norm(x_BxLxD), positions_BxL, cache, key(dropout_key, 0))
    x_BxLxD = x_BxLxD + dropout_lib.dropout(y, self.rate, key(dropout_key, 1))
    y = self.ffn(self.ffn_norm(x_BxLxD))
    x_BxLxD = x_BxLxD + dropout_lib.dropout(y, self.rate, key(dropout_key, 2))
    return x_BxLxD, cache


class Transformer(nnx.Module):
  """logits_BxLxV, cache = model(tokens_BxL, positions_BxL=None, cache=None, dropout_key=None).

  Dropout is on only when a `dropout_key` is given (training); `cache` comes from
  `init_cache` and is returned updated.
  """

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.config = config
    self.embed = embeddings.Embedding(config.vocab_size, config.width, rngs=rngs,
                                      std=config.init_std)
    if config.position == "learned":
      self.positions = positions_lib.LearnedPositions(config.max_length, config.width,
                                                      rngs=rngs, std=config.init_std)
    self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
    self.final_norm = norms.make_norm(config)
    if not config.tied_head:
      self.head = nnx.Linear(config.width, config.vocab_size, use_bias=False, rngs=rngs,
                             kernel_init=nnx.initializers.normal(config.init_std))

  def __call__(self, tokens_BxL, positions_BxL=None, cache=None, dropout_key=None):
    b, l = tokens_BxL.shape
    if positions_BxL is None:
      start = 0 if cache is None else cache["index"]
      positions_BxL = jnp.broadcast_to(start + jnp.arange(l, dtype=jnp.int32), (b, l))
    x_BxLxD = self.embed_tokens(tokens_BxL, positions_BxL, dropout_key)
    return self.trunk(x_BxLxD, positions_BxL, cache, dropout_key)

  def embed_tokens(self, tokens_BxL, positions_BxL, dropout_key=None):
    config = self.config
    x_BxLxD = self.embed(tokens_BxL)
    if config.position == "learned":
      x_BxLxD = x_BxLxD + self.positions(positions_BxL)
    elif config.position == "sinusoidal":
      x_BxLxD = x_BxLxD + positions_lib.sinusoidal(positions_BxL, config.width)
    return dropout_lib.dropout(x_BxLxD, config.dropout,
                               dropout_lib.site_key(dropout_key, config.num_layers))

  def trunk(self, x_BxLxD, positions_BxL, cache=None, dropout_key=None):
    """Blocks, final norm and head on embedded inputs: (logits_BxLxV float32, new cache)."""
    new_layers = []
    for i, block in enumerate(self.blocks):
      layer_cache = None if cache is None else cache["layers"][i]
      x_BxLxD, layer_cache = block(x_BxLxD, positions_BxL, layer_cache,
                                   dropout_lib.site_key(dropout_key, i))
      new_layers.append(layer_cache)
    x_BxLxD = self.final_norm(x_BxLxD)
    if self.config.tied_head:
      logits_BxLxV = self.embed.attend(x_BxLxD)
    else:
      logits_BxLxV = ffn_lib.tokens_first(self.head, x_BxLxD)
    new_cache = None
    if cache is not None:
      new_cache = {"index": cache["index"] + x_BxLxD.shape[1], "layers": new_layers}
    return logits_BxLxV.astype(jnp.float32), new_cache


def init_cache(config: ModelConfig, batch: int, length: int, dtype=jnp.float32):
  """An empty KV cache of `length` slots for every layer."""
  shape = (batch, length, config.kv_heads, config.head)
  layer = lambda: {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}
  return {"index": jnp.zeros((), jnp.int32),
          "layers": [layer() for _ in range(config.num_layers)]}


def abstract_model(config: ModelConfig) -> Transformer:
  """The model's structure with ShapeDtypeStructs for leaves: nothing is allocated."""
  return nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))


def cross_entropy(logits_BxLxV, targets_BxL, weights_BxL=None):
  """Mean of -log softmax(logits)[target] over the positions with weight (all by default)."""
  logp = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32), axis=-1)
  nll_BxL = -jnp.take_along_axis(logp, targets_BxL[..., None], axis=-1)[..., 0]
  if weights_BxL is None:
    return jnp.mean(nll_BxL)
  return jnp.sum(nll_BxL * weights_BxL) / jnp.maximum(jnp.sum(weights_BxL), 1.0)
