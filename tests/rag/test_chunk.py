import re

import pytest
from hypothesis import given, settings, strategies as st

from research.rag import chunk
from research.rag import embed

count_words = lambda texts: [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]


def _sentences(n, words=6):
  return [" ".join(f"w{i}x{j}" for j in range(words - 1)) + "." for i in range(n)]


def test_a_short_text_is_one_chunk():
  text = "First paragraph here.\n\nSecond one."
  [only] = chunk.split(text, count_words, max_tokens=50, overlap=5)
  assert only.text == text.strip() and (only.start, only.end) == (0, len(text))


def test_paragraphs_are_not_cut_when_they_fit_a_fresh_chunk():
  a, b = " ".join(_sentences(3)), " ".join(_sentences(3))  # 18 tokens each
  chunks = chunk.split(f"{a}\n\n{b}", count_words, max_tokens=30, overlap=0)
  assert [c.text for c in chunks] == [a, b]


def test_long_paragraph_splits_at_sentences_with_overlap():
  sentences = _sentences(10)  # 6 tokens each
  chunks = chunk.split(" ".join(sentences), count_words, max_tokens=20, overlap=6)
  assert all(c.tokens <= 20 for c in chunks)
  # every chunk after the first opens with the last sentence of the one before
  for previous, current in zip(chunks, chunks[1:]):
    assert current.text.startswith(previous.text.split(". ")[-1])
  assert all(any(s in c.text for c in chunks) for s in sentences)


def test_overlong_sentence_is_split_by_words():
  text = " ".join(f"word{i}" for i in range(100)) + "."
  chunks = chunk.split(text, count_words, max_tokens=16, overlap=0)
  assert all(c.tokens <= 16 for c in chunks)
  assert " ".join(c.text for c in chunks) == text


def test_bad_settings_are_refused():
  with pytest.raises(ValueError, match="overlap"):
    chunk.split("x", count_words, max_tokens=10, overlap=10)


@pytest.fixture(scope="module")
def minilm_count():
  tokenizer = embed.load_tokenizer(embed.package_dir(), 256)
  tokenizer.no_truncation()
  return lambda texts: [len(e.ids) for e in tokenizer.encode_batch(texts,
                                                                   add_special_tokens=False)]


_WORD = st.text("abcdeéñ漢字 ", min_size=1, max_size=12).map(str.strip).filter(bool)
_SENTENCE = st.lists(_WORD, min_size=1, max_size=12).map(lambda w: " ".join(w) + ".")
_PARAGRAPH = st.lists(_SENTENCE, min_size=1, max_size=8).map(" ".join)
_TEXT = st.lists(_PARAGRAPH, min_size=1, max_size=6).map("\n\n".join)


@settings(max_examples=40, deadline=None)
@given(text=_TEXT, max_tokens=st.integers(8, 64), overlap_share=st.floats(0, 0.5))
def test_chunks_never_exceed_the_budget_by_the_real_tokenizer(minilm_count, text, max_tokens,
                                                              overlap_share):
  overlap = int(max_tokens * overlap_share)
  chunks = chunk.split(text, minilm_count, max_tokens=max_tokens, overlap=overlap)
  recount = minilm_count([c.text for c in chunks])
  assert all(n <= max_tokens for n in recount), (recount, max_tokens)
  assert [c.tokens for c in chunks] == recount
  assert all(text[c.start:c.end] == c.text for c in chunks)
  covered = set()
  for c in chunks:
    covered.update(range(c.start, c.end))
  assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())
  starts = [c.start for c in chunks]
  assert starts == sorted(set(starts))
