"""Label scoring and greedy answers over one shared KV cache.

The prompt's common head (system instruction and demonstrations) runs once into a cache; each
text then only extends it with its own tokens, and each class name is scored as a continuation
of that text's cache:

  log p(label | prompt) = sum_j log softmax(logits_{t-1})[label_j]   over the label's tokens

Every forward goes through one jitted program: the cache extended by a chunk of `chunk` tokens
(right-padded; the cache index only advances by the real length, so the next chunk overwrites
the padding, which causality hides until then). Prefixes, texts, labels and greedy steps of any
length share it, so nothing recompiles per text.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research.nn import transformer


def round_up(n: int, multiple: int) -> int:
  return int(math.ceil(n / multiple) * multiple)


@functools.partial(jax.jit, static_argnums=(0,))
def _extend(graphdef, params, cache, tokens_1xK, length):
  """Writes a chunk at the cache index: (log-probs 1 x K x V of the next token, new cache)."""
  model = nnx.merge(graphdef, params)
  start = cache["index"]
  logits_1xKxV, cache = model(tokens_1xK, cache=cache)
  cache["index"] = start + length  # padding after `length` is overwritten by the next chunk
  return jax.nn.log_softmax(logits_1xKxV, axis=-1), cache


class CachedLM:
  """A model with one compiled chunk step; caches have `slots` positions.

  cache, logp_V = lm.run(lm.empty(), prompt_ids)     # logp_V: next-token log-probs
  """

  def __init__(self, model, chunk: int = 16, slots: int = 512, pad_id: int = 0):
    self.config = model.config
    self.graphdef, self.params = nnx.split(model)
    self.chunk, self.slots, self.pad_id = chunk, slots, pad_id

  def empty(self):
    return transformer.init_cache(self.config, 1, self.slots)

  def run(self, cache, ids: list[int]):
    """Extends `cache` by `ids`: (new cache, log-probs T x V after each of the ids)."""
    if not ids:
      raise ValueError("CachedLM.run: no tokens to add.")
    if int(cache["index"]) + round_up(len(ids), self.chunk) > self.slots:
      raise ValueError(f"CachedLM.run: {int(cache['index'])} + {len(ids)} tokens do not fit "
                       f"the {self.slots} cache slots.")
    rows = []
    for i in range(0, len(ids), self.chunk):
      piece = ids[i:i + self.chunk]
      tokens_1xK = jnp.asarray([piece + [self.pad_id] * (self.chunk - len(piece))], jnp.int32)
      logp_1xKxV, cache = _extend(self.graphdef, self.params, cache, tokens_1xK,
                                  jnp.int32(len(piece)))
      rows.append(np.asarray(logp_1xKxV[0, :len(piece)]))
    return cache, np.concatenate(rows, axis=0)

  def label_logprobs(self, cache, logp_V, labels: list[list[int]]) -> np.ndarray:
    """Summed log-probability of each label's tokens after the cached prompt, whose last
    next-token log-probs are `logp_V`."""
    sums = []
    for label in labels:
      total = float(logp_V[label[0]])
      if len(label) > 1:
        _, logp_TxV = self.run(cache, label[:-1])  # what follows each label token but the last
        total += float(np.sum(logp_TxV[np.arange(len(label) - 1), label[1:]]))
      sums.append(total)
    return np.asarray(sums, np.float64)

  def greedy(self, cache, logp_V, max_new_tokens: int, stop_ids=()) -> list[int]:
    """Greedy continuation of the cached prompt; stops after a token in `stop_ids`."""
    out = []
    for _ in range(max_new_tokens):
      token = int(np.argmax(logp_V))
      out.append(token)
      if token in stop_ids or len(out) == max_new_tokens:
        break
      cache, logp_TxV = self.run(cache, [token])
      logp_V = logp_TxV[-1]
    return out


def common_prefix(a: list[int], b: list[int]) -> int:
  n = 0
  while n < min(len(a), len(b)) and a[n] == b[n]:
    n += 1
  return n


# Turning summed label log-probs into class probabilities.

def combine(logp_NxC, lengths_C, normalize_length: bool = False, content_free_MxC=None):
  """Final log-scores N x C of the classes.

  normalize_length: s_c / n_c, the mean log-probability per label token.
  content_free_MxC: the same scores for content-free inputs ("N/A", ...); contextual
    calibration divides each class's probability by its mean probability on them:
    q_c ∝ p_c / pcf_c, i.e. s_c - log pcf_c, with p and pcf normalised over the classes.
  """
  lengths_C = np.asarray(lengths_C, np.float64)
  scores = np.asarray(logp_NxC, np.float64)
  if normalize_length:
    scores = scores / lengths_C
  if content_free_MxC is not None:
    cf = np.asarray(content_free_MxC, np.float64)
    if normalize_length:
      cf = cf / lengths_C
    pcf_C = np.mean(softmax(cf), axis=0)  # pcf = mean over content-free inputs of p(c | cf)
    scores = log_softmax(scores) - np.log(pcf_C)
  return scores


def log_softmax(s):
  s = np.asarray(s, np.float64)
  m = np.max(s, axis=-1, keepdims=True)
  return s - m - np.log(np.sum(np.exp(s - m), axis=-1, keepdims=True))


def softmax(s):
  return np.exp(log_softmax(s))
