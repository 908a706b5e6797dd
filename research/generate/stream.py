"""Token-by-token generation for chat: the same KV cache as `decode.generate`, but one jitted
step per token so each token can be shown as soon as it exists.

  for token in stream.stream(model, prompt_ids, 200, key, temperature=0.7, eos_id=eos):
    ...

The prompt is padded on the right to a bucket of `bucket` tokens, so prompts of similar
length share one compiled prefill; slots past the real prompt hold padding that causality
masks out until real tokens overwrite them.
"""

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from research.generate import decode
from research.generate import samplers
from research.nn import transformer
from research.text import detokenize


def _round_up(n: int, multiple: int) -> int:
  return int(math.ceil(n / multiple) * multiple)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _prefill(graphdef, params, prompt_1xP, length, cache_slots):
  model = nnx.merge(graphdef, params)
  cache = transformer.init_cache(model.config, 1, cache_slots)
  logits_1xPxV, cache = model(prompt_1xP, cache=cache)
  cache["index"] = length  # the next token goes right after the real prompt
  return jax.lax.dynamic_index_in_dim(logits_1xPxV[0], length - 1, keepdims=False), cache


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _step(graphdef, params, cache, settings, key, logits_V):
  temperature, top_k, top_p, min_p = settings
  next_token = samplers.sample(key, logits_V[None], temperature=temperature, top_k=top_k,
                               top_p=top_p, min_p=min_p)[0].astype(jnp.int32)
  model = nnx.merge(graphdef, params)
  logits_1x1xV, cache = model(next_token[None, None], cache=cache)
  return next_token, cache, logits_1x1xV[0, 0]


def stream(model, prompt_ids, max_new_tokens: int, key, *, temperature=1.0, top_k=None,
           top_p=None, min_p=None, eos_id=None, bucket: int = 64):
  """Yields sampled token ids one at a time; stops after EOS (yielded) or the budget."""
  prompt_ids = [int(t) for t in prompt_ids]
  if not prompt_ids:
    raise ValueError("stream: the prompt is empty.")
  padded = _round_up(len(prompt_ids), bucket)
  slots = _round_up(padded + max_new_tokens, bucket)
  limit = model.config.max_length if model.config.position in ("learned", "sinusoidal") else None
  if limit is not None and slots > limit:
    raise ValueError(f"stream: prompt of {len(prompt_ids)} tokens + {max_new_tokens} new "
                     f"exceeds max_length={limit}.")
  graphdef, params = nnx.split(model)
  prompt_1xP = jnp.asarray([prompt_ids + [0] * (padded - len(prompt_ids))], jnp.int32)
  logits_V, cache = _prefill(graphdef, params, prompt_1xP, jnp.int32(len(prompt_ids)), slots)
  settings = decode.sampler_settings(model.config.vocab_size, temperature, top_k, top_p,
                                     min_p)
  for i in range(max_new_tokens):
    token, cache, logits_V = _step(graphdef, params, cache, settings,
                                   jax.random.fold_in(key, i), logits_V)
    value = int(token)
    yield value
    if eos_id is not None and value == eos_id:
      return


def stream_text(tokenizer, token_ids):
  """Turns a token stream into text pieces, one per token, of whole characters only (""
  while a character's bytes are still coming): research/text/detokenize.py."""
  return detokenize.pieces(tokenizer, token_ids)
