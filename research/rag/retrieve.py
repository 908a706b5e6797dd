"""Retrieval over the chunks of a knowledge base: cosine similarity of unit vectors, BM25
keyword scores, and a hybrid of the two, with a similarity threshold (0.2) and the top_n (6)
chunks that pass it.

  retriever = retrieve.Retriever(vectors_NxD, texts, embedder)
  hits = retriever.search("how do I reset my password?")       # [Hit(row, score, ...)]
  rrf = retriever.with_settings(fusion="rrf")                   # same index, other fusion

The hybrid fuses the two scores one of two ways:
  weighted  (1 - a) cos + a bm25, each normalised first: "share" (cosine as it is, BM25 as the
            share of the query's weight a chunk matches), "minmax" or "zscore" (both scores
            over every chunk of the knowledge base).
  rrf       reciprocal-rank fusion: only the two rankings count, not their scales.

The default, min-max with a = 0.3, is the tuning half's choice in the sweep on git's
documentation (BENCHMARKS.md, issue 15 item 8), where it beats both parts on the held-out half
and draws with the old default. That was RAGFlow's share with a = 0.7, under which hybrid
ranked like BM25 alone on Python's docs: cosine, the better part on paraphrases, counted little.
"""

import collections
import copy
import dataclasses
import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np

MODES = ("vector", "bm25", "hybrid")
FUSIONS = ("weighted", "rrf")
NORMALIZATIONS = ("share", "minmax", "zscore")
KEYWORD_WEIGHT = 0.3
FUSION = "weighted"
NORMALIZATION = "minmax"
RRF_K = 60  # Cormack, Clarke & Buettcher (2009)'s constant
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


def min_max(score_N):
  """(s - min s) / (max s - min s) over every chunk, in [0, 1]; all zeros when s is flat."""
  low, high = score_N.min(), score_N.max()
  return (score_N - low) / jnp.where(high > low, high - low, 1.0)


def z_score(score_N):
  """(s - mean s) / std s over every chunk; all zeros when s is flat."""
  std = score_N.std()
  return (score_N - score_N.mean()) / jnp.where(std > 0, std, 1.0)


def ranks(score_N):
  """1 for the highest score, 2 for the next, ...; ties in row order."""
  order_N = jnp.argsort(-score_N, stable=True)
  return jnp.zeros_like(order_N).at[order_N].set(jnp.arange(1, len(score_N) + 1))


def reciprocal_rank_fusion(cosine_N, keyword_N, k: int = RRF_K):
  """RRF: score(d) = sum over rankings r of 1 / (k + r(d)), r(d) the rank of d in r.

  A chunk that shares no word with the query is not in the BM25 ranking (its place there
  would be an arbitrary tie among zeros), so it gets nothing from it.
  """
  vector_N = 1.0 / (k + ranks(cosine_N))
  keyword_N = jnp.where(keyword_N > 0, 1.0 / (k + ranks(keyword_N)), 0.0)
  return vector_N + keyword_N


def normalized(cosine_N, keyword_N, normalization: str):
  """The two scores on a common scale before they are weighted."""
  if normalization == "share":  # keyword_N already is BM25's share of the query's weight
    return cosine_N, keyword_N
  scale = {"minmax": min_max, "zscore": z_score}[normalization]
  return scale(cosine_N), scale(keyword_N)


def fuse(cosine_N, keyword_N, keyword_weight: float, fusion: str = FUSION,
         normalization: str = NORMALIZATION, rrf_k: int = RRF_K):
  """The hybrid score of every chunk: what hybrid search ranks by."""
  if fusion == "rrf":
    return reciprocal_rank_fusion(cosine_N, keyword_N, rrf_k)
  vector_N, keyword_N = normalized(cosine_N, keyword_N, normalization)
  return (1.0 - keyword_weight) * vector_N + keyword_weight * keyword_N


@functools.partial(jax.jit, static_argnames=("mode", "fusion", "normalization", "rrf_k", "k"))
def _top_k(vectors_NxD, query_D, keyword_N, keyword_weight, mode, fusion, normalization,
           rrf_k, k):
  cosine_N = vectors_NxD @ query_D  # rows and query are unit vectors
  vector_weight, keyword_weight = weights(mode, keyword_weight)
  match_N = vector_weight * cosine_N + keyword_weight * keyword_N
  score_N = (fuse(cosine_N, keyword_N, keyword_weight, fusion, normalization, rrf_k)
             if mode == "hybrid" else match_N)
  score_k, rows_k = jax.lax.top_k(score_N, k)
  return score_k, rows_k, cosine_N[rows_k], keyword_N[rows_k], match_N[rows_k]


@dataclasses.dataclass(frozen=True)
class Hit:
  row: int
  score: float     # what the mode ranks by
  vector: float    # cosine similarity
  keyword: float   # BM25 as the share of the query's weight the chunk matches
  match: float     # the mode's weighted sum of the two, compared with the threshold


def weights(mode: str, keyword_weight: float = KEYWORD_WEIGHT) -> tuple[float, float]:
  """(vector weight, keyword weight) of a retrieval mode."""
  if mode not in MODES:
    raise ValueError(f"retrieval mode {mode!r}: expected one of {MODES}.")
  return {"vector": (1.0, 0.0), "bm25": (0.0, 1.0),
          "hybrid": (1.0 - keyword_weight, keyword_weight)}[mode]


def _check(fusion: str, normalization: str) -> None:
  if fusion not in FUSIONS:
    raise ValueError(f"fusion {fusion!r}: expected one of {FUSIONS}.")
  if normalization not in NORMALIZATIONS:
    raise ValueError(f"normalization {normalization!r}: expected one of {NORMALIZATIONS}.")


class Retriever:
  """Search over fixed chunks. Hybrid search ranks by `fuse` (weighted sum or RRF); the
  threshold always compares `Hit.match`, the weighted sum of cosine and share-normalised BM25,
  because it must say whether anything is relevant at all, and min-max, z-score and RRF
  scores only say how a chunk compares with the query's other chunks (min-max gives the best
  chunk 1.0 for any question). Under (weighted, share) score and match agree."""

  def __init__(self, vectors_NxD: np.ndarray, texts: list[str], embedder=None,
               keyword_weight: float = KEYWORD_WEIGHT, fusion: str = FUSION,
               normalization: str = NORMALIZATION, rrf_k: int = RRF_K):
    if len(vectors_NxD) != len(texts):
      raise ValueError(f"retriever: {len(vectors_NxD)} vectors but {len(texts)} texts.")
    _check(fusion, normalization)
    self.vectors_NxD = jnp.asarray(vectors_NxD, jnp.float32)
    self.bm25 = BM25(texts)
    self.embedder = embedder
    self.keyword_weight, self.fusion = keyword_weight, fusion
    self.normalization, self.rrf_k = normalization, rrf_k

  def __len__(self):
    return self.bm25.size

  def with_settings(self, **settings) -> "Retriever":
    """The same index and embedder with other keyword_weight, fusion, normalization or
    rrf_k: nothing is indexed again."""
    other = copy.copy(self)
    for name, value in settings.items():
      if name not in ("keyword_weight", "fusion", "normalization", "rrf_k"):
        raise TypeError(f"with_settings: unknown setting {name!r}.")
      setattr(other, name, value)
    _check(other.fusion, other.normalization)
    return other

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
                 self.keyword_weight, mode, self.fusion, self.normalization, self.rrf_k, k)
    return [Hit(int(r), float(s), float(c), float(w), float(m))
            for s, r, c, w, m in zip(*(np.asarray(a) for a in out))]

  def search(self, query: str, mode: str = "hybrid", top_n: int = TOP_N,
             threshold: float = THRESHOLD, query_D=None) -> list[Hit]:
    """The top_n chunks of the ranking whose match reaches the threshold (maybe none)."""
    return [h for h in self.rank(query, top_n, mode, query_D) if h.match >= threshold]
