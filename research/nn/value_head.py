"""A scalar value head on a language model: the reward model's score and PPO's critic.

  v_t = h_t w + b        (h_t: the final-normed state the LM head reads at position t)

The reward model reads v at the answer's last token; PPO's critic reads it at every answer
token. The head is a plain linear layer, initialised as PyTorch initialises one (uniform in
+-1/sqrt(D)), as TRL's value head is.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from research.nn import lora


class WithValueHead(nnx.Module):
  """A Transformer `lm` and a value head `v_head` (D -> 1) on its final states."""

  def __init__(self, lm, *, rngs: nnx.Rngs):
    self.lm = lm
    width = lm.config.width
    bound = 1.0 / math.sqrt(width)
    uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype,
                                                                       -bound, bound)
    self.v_head = nnx.Linear(width, 1, kernel_init=uniform, bias_init=uniform, rngs=rngs)

  def values(self, tokens_BxL, dropout_key=None, remat=False):
    """v_t at every position, B x L float32 (the LM head is not applied)."""
    x_BxLxD = self.lm.hidden(tokens_BxL, dropout_key=dropout_key, remat=remat)
    return self.v_head(x_BxLxD)[..., 0].astype(jnp.float32)

  def logits_and_values(self, tokens_BxL, dropout_key=None, remat=False):
    """(next-token logits B x L x V, values B x L) from one pass through the blocks."""
    x_BxLxD = self.lm.hidden(tokens_BxL, dropout_key=dropout_key, remat=remat)
    return (self.lm.head_logits(x_BxLxD),
            self.v_head(x_BxLxD)[..., 0].astype(jnp.float32))


def trainable(finetuning_type: str):
  """What trains: with LoRA the adapters and the value head, in full fine-tuning everything."""
  if finetuning_type == "lora":
    return nnx.Any(lora.LoRAParam, nnx.All(nnx.Param, nnx.PathContains("v_head")))
  return nnx.Param


def last_token_values(values_BxL, lengths_B):
  """v at each row's last real token (position length - 1): the reward model's score."""
  return jnp.take_along_axis(values_BxL, (lengths_B - 1)[:, None], axis=1)[:, 0]
