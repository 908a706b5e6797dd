import math

import numpy as np
import pytest

from research.rag import answer
from research.rag import retrieve

TEXTS = ["cat cat dog", "dog bird", "fish"]  # lengths 3, 2, 1; avgdl = 2


def test_bm25_matches_a_hand_computed_example():
  bm25 = retrieve.BM25(TEXTS, k1=1.2, b=0.75)
  idf_cat = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))  # ln(8/3) = 0.98083
  idf_dog = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # ln(1.6) = 0.47000
  norm_0 = 1.2 * (1 - 0.75 + 0.75 * 3 / 2)            # 1.65
  norm_1 = 1.2 * (1 - 0.75 + 0.75 * 2 / 2)            # 1.2
  want_0 = idf_cat * 2 * 2.2 / (2 + norm_0) + idf_dog * 1 * 2.2 / (1 + norm_0)
  want_1 = idf_dog * 1 * 2.2 / (1 + norm_1)
  np.testing.assert_allclose(bm25.scores("Cat? dog, cat!"), [want_0, want_1, 0.0], rtol=1e-6)
  np.testing.assert_allclose(want_0, 1.572563, rtol=1e-5)  # by hand: 1.182368 + 0.390195
  ceiling = (idf_cat + idf_dog) * 2.2
  np.testing.assert_allclose(bm25.normalized_scores("cat dog"),
                             [want_0 / ceiling, want_1 / ceiling, 0.0], rtol=1e-6)
  assert bm25.normalized_scores("unicorn").max() == 0.0


def test_normalized_bm25_is_below_one_and_an_unknown_word_lowers_it():
  bm25 = retrieve.BM25(["cat " * 50, "dog"])
  assert 0.9 < bm25.normalized_scores("cat").max() < 1.0
  assert bm25.normalized_scores("cat unicorn").max() < 0.5 * bm25.normalized_scores("cat").max()


class _Fixed:
  dim = 2

  def __init__(self, vector):
    self.vector = np.asarray(vector, np.float32)

  def encode(self, texts):
    return np.stack([self.vector] * len(texts))


def _retriever(query_vector):
  vectors = np.array([[1, 0], [0.6, 0.8], [0, 1]], np.float32)
  return retrieve.Retriever(vectors, TEXTS, _Fixed(query_vector))


def test_hybrid_is_the_weighted_sum_and_the_modes_rank_by_their_part():
  r = _retriever([0.0, 1.0])
  cosine = np.array([0.0, 0.8, 1.0])
  keyword = r.bm25.normalized_scores("cat")
  for mode, want in [("vector", cosine), ("bm25", keyword),
                     ("hybrid", 0.3 * cosine + 0.7 * keyword)]:
    hits = r.rank("cat", 3, mode)
    assert [h.row for h in hits] == list(np.argsort(-want, kind="stable"))
    np.testing.assert_allclose([h.score for h in hits], np.sort(want)[::-1], atol=1e-6)
    if mode != "bm25":  # bm25 alone does not embed the query
      np.testing.assert_allclose([h.vector for h in hits], cosine[[h.row for h in hits]],
                                 atol=1e-6)
  assert retrieve.weights("hybrid") == pytest.approx((0.3, 0.7))
  with pytest.raises(ValueError, match="retrieval mode"):
    r.rank("cat", 3, "fuzzy")


def test_threshold_and_top_n():
  r = _retriever([0.0, 1.0])
  assert [h.row for h in r.search("x", "vector", top_n=2, threshold=0.2)] == [2, 1]
  assert [h.row for h in r.search("x", "vector", top_n=6, threshold=0.9)] == [2]
  assert r.search("x", "vector", threshold=1.01) == []


def test_no_chunk_above_threshold_means_no_answer_and_no_model_call():
  r = _retriever([-1.0, 0.0])  # cosine <= 0 for every chunk, and no shared words

  def load_lm():
    raise AssertionError("the model must not be called")
  result = answer.ask(load_lm, r, [{"source": "s", "chunk": 0, "text": t} for t in TEXTS],
                      "unicorn?", mode="hybrid")
  assert "".join(result.pieces) == answer.NO_ANSWER and result.sources == []


def test_prompt_numbers_the_chunks():
  rows = [{"source": "/d/a.txt", "text": "Alpha."}, {"source": "/d/b.md", "text": "Beta."}]
  user = answer.messages("Which?", rows)[1]["content"]
  assert "[1] (from a.txt) Alpha.\n\n[2] (from b.md) Beta." in user
  assert user.endswith("Question: Which?\nAnswer in one sentence and cite the passage, e.g. [1].")
