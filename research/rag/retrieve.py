"""Retrieval over the chunks of a knowledge base: cosine similarity of unit vectors, BM25
keyword scores, and RAGFlow's hybrid of the two (keyword 0.7 / vector 0.3), with a
similarity threshold (0.2) and the top_n (6) chunks that pass it.

  retriever = retrieve.Retriever(vectors_NxD, texts, embedder)
  hits = retriever.search("how do I reset my password?")       # [Hit(row, score, ...)]
"""

import collections
import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("vector", "bm25", "hybrid")
KEYWORD_WEIGHT = 0.7
THRESHOLD = 0.2
TOP_N = 6

_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
  return _WORD.findall(text.lower())


class BM25:
  """Okapi BM25 with Lucene's idf: for query q and document d,

    score(q, d) = sum_{t in q} idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl))
    idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))

  Postings keep the saturated term frequency, so a query is a few scatter-adds.
  """

  def __init__(self, texts: list[str], k1: float = 1.2, b: float = 0.75):
    self.k1, self.b = k1, b
    docs = [collections.Counter(words(t)) for t in texts]
    self.size = len(docs)
    lengths_N = np.array([sum(d.values()) for d in docs], np.float32)
    avgdl = max(float(lengths_N.mean()), 1e-9) if self.size else 1.0
    norm_N = k1 * (1 - b + b * lengths_N / avgdl)
    rows, freqs = collections.defaultdict(list), collections.defaultdict(list)
    for i, doc in enumerate(docs):
      for term, tf in doc.items():
        rows[term].append(i)
        freqs[term].append(tf)
    self.postings = {}
    for term, r in rows.items():
      r = np.array(r, np.int64)
      tf = np.array(freqs[term], np.float32)
      self.postings[term] = (r, tf * (k1 + 1) / (tf + norm_N[r]))

  def idf(self, term: str) -> float:
    n = len(self.postings[term][0]) if term in self.postings else 0
    return math.log(1 + (self.size - n + 0.5) / (n + 0.5))

  def scores(self, query: str) -> np.ndarray:
    scores_N = np.zeros(self.size, np.float32)
    for term in set(words(query)):
      if term in self.postings:
        rows, saturated = self.postings[term]
        scores_N[rows] += self.idf(term) * saturated
    return scores_N

  def normalized_scores(self, query: str) -> np.ndarray:
    """BM25 / sum_{t in q} idf(t) (k1 + 1), in [0, 1).

    The denominator is the limit a document reaches when it holds every query term
    infinitely often. So the score is the share of the query's weight that a document
    matches (like RAGFlow's token similarity), not a fraction of the best hit: dividing by
    the best hit would give 1.0 to whatever shares a word with an off-topic question, and the
    threshold could never refuse. Terms absent from the corpus count in the denominator,
    which is right: the knowledge base lacks them.
    """
    terms = set(words(query))
    ceiling = sum(self.idf(t) for t in terms) * (self.k1 + 1)
    return self.scores(query) / ceiling if ceiling > 0 else np.zeros(self.size, np.float32)


@functools.partial(jax.jit, static_argnames="k")
def _top_k(vectors_NxD, query_D, keyword_N, vector_weight, keyword_weight, k):
  cosine_N = vectors_NxD @ query_D  # rows and query are unit vectors
  score_N = vector_weight * cosine_N + keyword_weight * keyword_N
  score_k, rows_k = jax.lax.top_k(score_N, k)
  return score_k, rows_k, cosine_N[rows_k], keyword_N[rows_k]


@dataclasses.dataclass(frozen=True)
class Hit:
  row: int
  score: float     # what the mode ranks by, compared with the threshold
  vector: float    # cosine similarity
  keyword: float   # normalised BM25


def weights(mode: str, keyword_weight: float = KEYWORD_WEIGHT) -> tuple[float, float]:
  """(vector weight, keyword weight) of a retrieval mode."""
  if mode not in MODES:
    raise ValueError(f"retrieval mode {mode!r}: expected one of {MODES}.")
  return {"vector": (1.0, 0.0), "bm25": (0.0, 1.0),
          "hybrid": (1.0 - keyword_weight, keyword_weight)}[mode]


class Retriever:

  def __init__(self, vectors_NxD: np.ndarray, texts: list[str], embedder=None,
               keyword_weight: float = KEYWORD_WEIGHT):
    if len(vectors_NxD) != len(texts):
      raise ValueError(f"retriever: {len(vectors_NxD)} vectors but {len(texts)} texts.")
    self.vectors_NxD = jnp.asarray(vectors_NxD, jnp.float32)
    self.bm25 = BM25(texts)
    self.embedder = embedder
    self.keyword_weight = keyword_weight

  def __len__(self):
    return self.bm25.size

  def rank(self, query: str, k: int, mode: str = "hybrid", query_D=None) -> list[Hit]:
    """The k best chunks by the mode's score, no threshold."""
    k = min(k, len(self))
    if k == 0:
      return []
    vector_weight, keyword_weight = weights(mode, self.keyword_weight)
    if query_D is None:
      query_D = (self.embedder.encode([query])[0] if vector_weight
                 else np.zeros(self.vectors_NxD.shape[1], np.float32))
    keyword_N = (self.bm25.normalized_scores(query) if keyword_weight
                 else np.zeros(len(self), np.float32))
    out = _top_k(self.vectors_NxD, jnp.asarray(query_D, jnp.float32), keyword_N,
                 vector_weight, keyword_weight, k)
    score_k, rows_k, cosine_k, keyword_k = (np.asarray(a) for a in out)
    return [Hit(int(r), float(s), float(c), float(w))
            for r, s, c, w in zip(rows_k, score_k, cosine_k, keyword_k)]

  def search(self, query: str, mode: str = "hybrid", top_n: int = TOP_N,
             threshold: float = THRESHOLD, query_D=None) -> list[Hit]:
    """The top_n chunks whose score reaches the threshold (maybe none)."""
    return [h for h in self.rank(query, top_n, mode, query_D) if h.score >= threshold]
