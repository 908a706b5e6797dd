"""A stand-in embedder for the store and retrieval tests: words as tokens, hashed
bag-of-words vectors. Fast, deterministic, and it counts how many texts it embedded."""

import hashlib
import re

import numpy as np
import pytest


class WordEmbedder:
  dim = 16

  def __init__(self):
    self.embedded = 0

  def count_tokens(self, texts):
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

  def encode(self, texts, progress=False):
    del progress
    out = np.zeros((len(texts), self.dim), np.float32)
    for i, text in enumerate(texts):
      for word in re.findall(r"\w+", text.lower()):
        out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
      out[i] /= max(np.linalg.norm(out[i]), 1e-12)
    self.embedded += len(texts)
    return out


@pytest.fixture
def word_embedder():
  return WordEmbedder()


def gated_embedder(release):
  """A WordEmbedder class whose encode waits for `release` (an ingest held mid-way)."""

  class Gated(WordEmbedder):

    def encode(self, texts, progress=False):
      release.wait(30)
      return super().encode(texts, progress)

  return Gated

