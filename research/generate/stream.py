"""Token-by-token generation for chat: the same KV cache as `decode.generate`, but one jitted
step per token so each token can be shown as soon as it exists.

  for token in stream.stream(model, prompt_ids, 200, key, temperature=0.7, eos_id=eos):
    ...

A `constraint` (research/generate/structured.py) is a grammar followed on the host: before each
step it says which tokens may come next, after it it takes the token drawn, and the stream ends
when the grammar is complete. `stream_scored` yields each token with its log-probability.

The prompt is padded on the right to a bucket of `bucket` tokens, so prompts of similar
length share one compiled prefill; slots past the real prompt hold padding that causality
masks out until real tokens overwrite them.
"""

import dataclasses
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
  logits_1x1xV, cache = model(prompt_1xP, cache=cache, at_B=jnp.reshape(length - 1, (1,)))
  cache["index"] = length  # the next token goes right after the real prompt
  return logits_1x1xV[0, 0], cache


@functools.partial(jax.jit, static_argnums=(0,), donate_argnums=(2,))
def _step(graphdef, params, cache, settings, key, logits_V, allowed_V=None):
  temperature, top_k, top_p, min_p = settings
  allowed_1xV = None if allowed_V is None else allowed_V[None]
  next_token = samplers.sample(key, logits_V[None], temperature=temperature, top_k=top_k,
                               top_p=top_p, min_p=min_p,
                               allowed=allowed_1xV)[0].astype(jnp.int32)
  model = nnx.merge(graphdef, params)
  logits_1x1xV, cache = model(next_token[None, None], cache=cache)
  return next_token, cache, logits_1x1xV[0, 0]


@dataclasses.dataclass(frozen=True)
class Scored:
  """A sampled token with log p(token | prefix) and the `top` likeliest tokens there.

  p is the model's own distribution, softmax of the raw logits, before temperature, top-k/p
  and a constraint's mask: those choose what is drawn, not how likely the model finds it,
  so the numbers mean the same under any sampler (OpenAI reports them so too)."""
  token: int
  logprob: float
  top: tuple[tuple[int, float], ...]  # (token, logprob), likeliest first


@functools.partial(jax.jit, static_argnums=(2,))
def _scores(logits_V, token, top: int):
  # log p = log_softmax of the model's raw logits: the distribution before temperature,
  # top-k/p and the grammar's mask, which only decide what is drawn from it.
  logprobs_V = jax.nn.log_softmax(logits_V.astype(jnp.float32))
  top_logprobs, top_ids = jax.lax.top_k(logprobs_V, top)
  return logprobs_V[token], top_ids, top_logprobs


def stream(model, prompt_ids, max_new_tokens: int, key, *, temperature=1.0, top_k=None,
           top_p=None, min_p=None, eos_id=None, bucket: int = 64, constraint=None):
  """Yields sampled token ids one at a time; stops after EOS (yielded), the budget, or when
  `constraint` (allowed_V(), advance(token), complete()) says its grammar is complete."""
  for token, _ in _steps(model, prompt_ids, max_new_tokens, key, temperature, top_k, top_p,
                         min_p, eos_id, bucket, constraint):
    yield token


def stream_scored(model, prompt_ids, max_new_tokens: int, key, *, top_logprobs: int = 0,
                  temperature=1.0, top_k=None, top_p=None, min_p=None, eos_id=None,
                  bucket: int = 64, constraint=None):
  """What `stream` yields, as `Scored` tokens with the `top_logprobs` likeliest beside."""
  top = min(top_logprobs, model.config.vocab_size)
  for token, logits_V in _steps(model, prompt_ids, max_new_tokens, key, temperature, top_k,
                                top_p, min_p, eos_id, bucket, constraint):
    logprob, top_ids, top_values = _scores(logits_V, token, max(top, 1))
    pairs = tuple(zip(top_ids.tolist(), top_values.tolist()))[:top]
    yield Scored(token, float(logprob), pairs)


def _steps(model, prompt_ids, max_new_tokens, key, temperature, top_k, top_p, min_p, eos_id,
           bucket, constraint):
  """(token, the logits it was drawn from) per step."""
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
    allowed_V = None if constraint is None else constraint.allowed_V()
    token, cache, next_logits_V = _step(graphdef, params, cache, settings,
                                        jax.random.fold_in(key, i), logits_V, allowed_V)
    value = int(token)
    yield value, logits_V
    logits_V = next_logits_V
    if eos_id is not None and value == eos_id:
      return
    if constraint is not None:
      constraint.advance(value)
      if constraint.complete():
        return


def stream_text(tokenizer, token_ids):
  """Turns a token stream into text pieces, one per token, of whole characters only (""
  while a character's bytes are still coming): research/text/detokenize.py."""
  return detokenize.pieces(tokenizer, token_ids)
