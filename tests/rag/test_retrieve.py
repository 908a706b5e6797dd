import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

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
  r = _retriever([0.0, 1.0]).with_settings(normalization="share", keyword_weight=0.7)
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
  assert retrieve.weights("hybrid", 0.7) == pytest.approx((0.3, 0.7))
  with pytest.raises(ValueError, match="retrieval mode"):
    r.rank("cat", 3, "fuzzy")


def test_threshold_and_top_n():
  r = _retriever([0.0, 1.0])
  assert [h.row for h in r.search("x", "vector", top_n=2, threshold=0.2)] == [2, 1]
  assert [h.row for h in r.search("x", "vector", top_n=6, threshold=0.9)] == [2]
  assert r.search("x", "vector", threshold=1.01) == []


SETTINGS = [{"fusion": "rrf"}] + [{"normalization": n, "keyword_weight": w}
                                   for n in retrieve.NORMALIZATIONS for w in (0.3, 0.7)]


@pytest.mark.parametrize("settings_", SETTINGS, ids=str)
def test_no_chunk_above_threshold_means_no_answer_and_no_model_call(settings_):
  # min-max and RRF give the best chunk a high score for any question; the threshold
  # looks at the match, so an off-topic question is still refused
  r = _retriever([-1.0, 0.0]).with_settings(**settings_)  # cosine <= 0, no shared words

  def load_lm():
    raise AssertionError("the model must not be called")
  result = answer.ask(load_lm, r, [{"source": "s", "chunk": 0, "text": t} for t in TEXTS],
                      "unicorn?", mode="hybrid")
  assert "".join(result.pieces) == answer.NO_ANSWER and result.sources == []


def _rrf_reference(cosine, keyword, k=60):
  """RRF written out with NumPy: 1 / (k + rank) from each ranking a chunk is in."""
  out = np.zeros(len(cosine))
  for scores, present in ((cosine, np.ones(len(cosine), bool)), (keyword, keyword > 0)):
    order = [i for i in np.argsort(-scores, kind="stable") if present[i]]
    for rank, i in enumerate(order, 1):
      out[i] += 1 / (k + rank)
  return out


def test_rrf_on_hand_made_rankings():
  cosine = np.array([0.9, 0.1, 0.5, 0.3], np.float32)   # ranks 1, 4, 2, 3
  keyword = np.array([0.0, 2.0, 1.0, 0.5], np.float32)  # ranks -, 1, 2, 3
  want = [1 / 61, 1 / 64 + 1 / 61, 1 / 62 + 1 / 62, 1 / 63 + 1 / 63]
  got = retrieve.fuse(cosine, keyword, 0.7, fusion="rrf")
  np.testing.assert_allclose(got, want, rtol=1e-6)
  np.testing.assert_allclose(_rrf_reference(cosine, keyword), want, rtol=1e-12)
  np.testing.assert_allclose(retrieve.reciprocal_rank_fusion(cosine, keyword, k=1),
                             _rrf_reference(cosine, keyword, k=1), rtol=1e-6)


# distinct by construction (steps of 1e-3 and 1e-2), so no rescaling below can make a tie
_SCORES = st.lists(st.integers(-1000, 1000), min_size=8, max_size=8, unique=True).map(
    lambda v: np.array(v, np.float32) / 1000)
_KEYWORDS = st.tuples(
    st.lists(st.integers(1, 1000), min_size=8, max_size=8, unique=True),
    st.lists(st.booleans(), min_size=8, max_size=8)).map(  # False: shares no query word
        lambda v: np.where(v[1], np.array(v[0], np.float32) / 100, 0.0).astype(np.float32))


@settings(max_examples=40, deadline=None)
@given(cosine=_SCORES, keyword=_KEYWORDS)
def test_rrf_ignores_monotone_rescaling_of_either_score(cosine, keyword):
  fused = retrieve.fuse(cosine, keyword, 0.5, fusion="rrf")
  np.testing.assert_allclose(fused, _rrf_reference(cosine, keyword), rtol=1e-6)
  stretched = np.exp(3 * cosine) - 7  # increasing, any offset
  squashed = 4 * keyword ** 2         # increasing on [0, inf) and 0 stays 0 (no match)
  for c, w in ((stretched, keyword), (cosine, squashed), (stretched, squashed)):
    np.testing.assert_allclose(retrieve.fuse(c, w, 0.5, fusion="rrf"), fused, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(values=_SCORES)
def test_min_max_spans_zero_to_one_and_z_score_is_standard(values):
  scores = values
  scaled = np.asarray(retrieve.min_max(scores))
  assert scaled.min() >= 0.0 and scaled.max() <= 1.0
  if np.ptp(scores) > 1e-3:
    assert scaled.min() == 0.0 and scaled.max() == pytest.approx(1.0)
    z = np.asarray(retrieve.z_score(scores))
    assert abs(z.mean()) < 1e-4 and z.std() == pytest.approx(1.0, rel=1e-3)
  np.testing.assert_array_equal(retrieve.min_max(np.full(5, 0.3, np.float32)), np.zeros(5))
  np.testing.assert_array_equal(retrieve.z_score(np.full(5, 0.3, np.float32)), np.zeros(5))


@pytest.mark.parametrize("settings_", SETTINGS, ids=str)
def test_hybrid_ranks_by_the_fused_score_and_reports_the_match(settings_):
  r = _retriever([0.0, 1.0]).with_settings(**settings_)
  cosine = np.array([0.0, 0.8, 1.0], np.float32)
  keyword = r.bm25.normalized_scores("cat dog")
  if settings_.get("fusion") == "rrf":
    want = _rrf_reference(cosine, keyword)
  else:
    w = settings_["keyword_weight"]
    scale = {"share": lambda s: s, "minmax": lambda s: (s - s.min()) / np.ptp(s),
             "zscore": lambda s: (s - s.mean()) / s.std()}[settings_["normalization"]]
    want = (1 - w) * scale(cosine) + w * scale(keyword)
  hits = r.rank("cat dog", 3, "hybrid")
  assert [h.row for h in hits] == list(np.argsort(-want, kind="stable"))
  np.testing.assert_allclose([h.score for h in hits], np.sort(want)[::-1], rtol=1e-5,
                             atol=1e-6)
  w = r.keyword_weight
  np.testing.assert_allclose([h.match for h in hits],
                             [(1 - w) * cosine[h.row] + w * keyword[h.row] for h in hits],
                             atol=1e-6)


def test_other_settings_share_the_index_and_bad_ones_are_named():
  r = _retriever([0.0, 1.0])
  rrf = r.with_settings(fusion="rrf")
  assert rrf.bm25 is r.bm25 and r.fusion == "weighted" and rrf.fusion == "rrf"
  with pytest.raises(ValueError, match="fusion 'sum'"):
    r.with_settings(fusion="sum")
  with pytest.raises(ValueError, match="normalization 'max'"):
    retrieve.Retriever(np.eye(3, dtype=np.float32), TEXTS, normalization="max")
  with pytest.raises(TypeError, match="threshold"):
    r.with_settings(threshold=0.5)


def test_prompt_numbers_the_chunks():
  rows = [{"source": "/d/a.txt", "text": "Alpha."}, {"source": "/d/b.md", "text": "Beta."}]
  user = answer.messages("Which?", rows)[1]["content"]
  assert "[1] (from a.txt) Alpha.\n\n[2] (from b.md) Beta." in user
  assert user.endswith("Question: Which?\nAnswer in one sentence and cite the passage, e.g. [1].")
