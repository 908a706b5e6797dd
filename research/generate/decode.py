"""KV-cache decoding under jit: one prefill of the prompt, then one token per
`lax.while_loop` iteration, until every row has emitted EOS or `max_new_tokens` are out.

  tokens_BxT, lengths_B = decode.generate(model, prompt_BxP, 50, jax.random.key(0),
                                          temperature=0.8, top_p=0.95, eos_id=tok.eos_id)

The cache holds keys and values of every position so far, so each new token costs one row of
attention instead of recomputing the prefix; the logits are the same as a full recompute.
Prompts of different lengths go in one batch left-padded to P (`prompt_lengths`): every row's
next token then lands in the same cache slot, and each row's positions start at 0 at its first
real token, so a row decodes as it would alone.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.generate import samplers
from research.nn import transformer


def generate(model, prompt_BxP, max_new_tokens: int, key, *, temperature=1.0, top_k=None,
             top_p=None, min_p=None, eos_id: int | None = None, pad_id: int = 0,
             cache_dtype=jnp.float32, prompt_lengths=None):
  """Prompt plus up to `max_new_tokens` sampled tokens, B x (P + max_new_tokens), and the
  number of tokens generated per row (EOS included; `pad_id` fills the rest).

  `prompt_lengths` (B,): row b's prompt is its last prompt_lengths[b] tokens, left-padded to
  P; None: every row is P long. Generated tokens always start at column P."""
  graphdef, params = nnx.split(model)
  prompt_BxP = jnp.asarray(prompt_BxP, jnp.int32)
  b, p = prompt_BxP.shape
  if p + max_new_tokens > _position_limit(model.config):
    raise ValueError(f"generate: prompt {p} + max_new_tokens "
                     f"{max_new_tokens} exceeds max_length={model.config.max_length}.")
  offset_B = jnp.zeros((b,), jnp.int32)
  if prompt_lengths is not None:
    lengths = np.asarray(prompt_lengths)
    if lengths.shape != (b,) or np.any(lengths < 1) or np.any(lengths > p):
      raise ValueError(f"generate: prompt_lengths should be {b} lengths in 1..{p}, got "
                       f"{lengths.tolist()}.")
    offset_B = jnp.asarray(p - lengths, jnp.int32)  # left padding of each row
  settings = sampler_settings(model.config.vocab_size, temperature, top_k, top_p, min_p)
  return _generate(graphdef, params, prompt_BxP, offset_B, key, settings, max_new_tokens,
                   -1 if eos_id is None else eos_id, pad_id, jnp.dtype(cache_dtype))


def sample_each(model, tokenizer, prompt: str, max_new_tokens: int, key,
                named=samplers.NAMED) -> dict[str, str]:
  """One continuation of `prompt` per named sampler: name -> prompt + generated text. The
  continuation is cut to fit max_length, and stops at the tokenizer's EOS if it has one."""
  prompt_1xP = jnp.asarray([tokenizer.encode(prompt)], jnp.int32)
  new = min(max_new_tokens, model.config.max_length - prompt_1xP.shape[1])
  texts = {}
  for name, kwargs in named.items():
    tokens, lengths = generate(model, prompt_1xP, new, key,
                               eos_id=getattr(tokenizer, "eos_id", None), **kwargs)
    start = prompt_1xP.shape[1]
    generated = np.asarray(tokens[0, start:start + int(lengths[0])])
    texts[name] = prompt + tokenizer.decode(generated.tolist())
  return texts

def sampler_settings(vocab_size, temperature=1.0, top_k=None, top_p=None, min_p=None):
  """Sampler arguments as traced scalars, neutral values standing in for None, so every
  sampler setting shares one compiled program."""
  return (jnp.float32(temperature), jnp.int32(vocab_size if top_k is None else top_k),
          jnp.float32(1.0 if top_p is None else top_p),
          jnp.float32(0.0 if min_p is None else min_p))


def _position_limit(config):
  return config.max_length if config.position in ("learned", "sinusoidal") else 1 << 30


@functools.partial(jax.jit, static_argnums=(0, 6, 7, 8, 9))
def _generate(graphdef, params, prompt_BxP, offset_B, key, settings, max_new_tokens, eos_id,
              pad_id, cache_dtype):
  model = nnx.merge(graphdef, params)
  temperature, top_k, top_p, min_p = settings
  sampler = functools.partial(samplers.sample, temperature=temperature, top_k=top_k,
                              top_p=top_p, min_p=min_p)
  b, p = prompt_BxP.shape
  total = p + max_new_tokens
  cache = transformer.init_cache(model.config, b, total, cache_dtype, offset_B)
  logits_Bx1xV, cache = model(prompt_BxP, cache=cache, at_B=jnp.full((b,), p - 1))
  tokens_BxT = jnp.concatenate([prompt_BxP, jnp.full((b, max_new_tokens), pad_id, jnp.int32)],
                               axis=1)

  def cond(carry):
    i, _, _, _, done_B, _ = carry
    return (i < max_new_tokens) & ~jnp.all(done_B)

  def body(carry):
    i, tokens_BxT, cache, logits_BxV, done_B, lengths_B = carry
    token_B = sampler(jax.random.fold_in(key, i), logits_BxV).astype(jnp.int32)
    token_B = jnp.where(done_B, pad_id, token_B)
    tokens_BxT = jax.lax.dynamic_update_slice_in_dim(tokens_BxT, token_B[:, None], p + i,
                                                     axis=1)
    lengths_B = lengths_B + (~done_B).astype(jnp.int32)
    done_B = done_B | (token_B == eos_id)
    logits_Bx1xV, cache = model(token_B[:, None], cache=cache)
    return i + 1, tokens_BxT, cache, logits_Bx1xV[:, -1], done_B, lengths_B

  carry = (jnp.zeros((), jnp.int32), tokens_BxT, cache, logits_Bx1xV[:, 0],
           jnp.zeros((b,), bool), jnp.zeros((b,), jnp.int32))
  _, tokens_BxT, _, _, _, lengths_B = jax.lax.while_loop(cond, body, carry)
  return tokens_BxT, lengths_B


def cached_logits(model, tokens_BxT, prefill: int = 1, offset_B=None):
  """Logits for every position computed through the cache: the prompt's first `prefill`
  tokens at once, then one token at a time (what `generate` does). `offset_B`: each row's
  left padding (zeros by default)."""
  graphdef, params = nnx.split(model)
  tokens_BxT = jnp.asarray(tokens_BxT, jnp.int32)
  offset_B = jnp.zeros(tokens_BxT.shape[:1], jnp.int32) if offset_B is None else offset_B
  return _cached_logits(graphdef, params, tokens_BxT, jnp.asarray(offset_B, jnp.int32),
                        prefill)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _cached_logits(graphdef, params, tokens_BxT, offset_B, prefill):
  model = nnx.merge(graphdef, params)
  b, t = tokens_BxT.shape
  cache = transformer.init_cache(model.config, b, t, offset_B=offset_B)
  first_BxPxV, cache = model(tokens_BxT[:, :prefill], cache=cache)

  def one(cache, token_B):
    logits_Bx1xV, cache = model(token_B[:, None], cache=cache)
    return cache, logits_Bx1xV[:, 0]

  _, rest_TxBxV = jax.lax.scan(one, cache, tokens_BxT[:, prefill:].T)
  return jnp.concatenate([first_BxPxV, jnp.swapaxes(rest_TxBxV, 0, 1)], axis=1)
