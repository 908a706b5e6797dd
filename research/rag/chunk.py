"""Chunking: paragraphs first, sentences when a paragraph is too long, words when a sentence
is; every chunk has at most `max_tokens` tokens and starts with up to `overlap` tokens of the
previous one.

  chunks = chunk.split(text, count_tokens, max_tokens=256, overlap=32)

`count_tokens(list[str]) -> list[int]` is the embedding model's tokenizer without special
tokens. WordPiece splits at whitespace and punctuation, so the count of pieces joined by a
space is the sum of their counts, which is what the packing below relies on (the tests check
it by recounting every chunk).

The defaults (256 tokens, 32 shared) are the tuning half's choice in the sweep on git's
documentation (BENCHMARKS.md, issue 15 item 8); before, this module followed RAGFlow's 512 / 64. MiniLM reads at
most 256 tokens (its max_seq_length), so the vector of a 512-token chunk stands for its first
half while BM25 sees all of it; at 256 both read the same text.
"""

import dataclasses
import re
from typing import Callable

CountTokens = Callable[[list[str]], list[int]]
MAX_TOKENS = 256
OVERLAP = 32

_PARAGRAPH = re.compile(r"\n[ \t]*\n+")
_SENTENCE_END = re.compile(r"[.!?。！？][\"')\]]*(\s+)")


@dataclasses.dataclass(frozen=True)
class Chunk:
  text: str
  start: int       # character offsets of the chunk in the extracted text
  end: int
  tokens: int


@dataclasses.dataclass(frozen=True)
class _Piece:
  start: int
  end: int
  tokens: int


def _spans(text: str, pattern: re.Pattern, start: int, end: int) -> list[tuple[int, int]]:
  """The non-blank stretches of text[start:end] between the matches of `pattern`."""
  spans, at = [], start
  for m in pattern.finditer(text, start, end):
    cut = m.start(1) if m.re.groups else m.start()  # a sentence keeps its full stop
    spans.append((at, cut))
    at = m.end()
  spans.append((at, end))
  out = []
  for a, b in spans:
    piece = text[a:b]
    if piece.strip():
      a += len(piece) - len(piece.lstrip())
      b -= len(piece) - len(piece.rstrip())
      out.append((a, b))
  return out


def _fit(text, spans, count_tokens, max_tokens, finer) -> list[_Piece]:
  """Counts each span; a span over the budget is split by the next finer rule."""
  counts = count_tokens([text[a:b] for a, b in spans]) if spans else []
  pieces = []
  for (a, b), n in zip(spans, counts):
    if n <= max_tokens:
      pieces.append(_Piece(a, b, n))
    else:
      pieces.extend(finer(text, a, b, count_tokens, max_tokens))
  return pieces


def _by_characters(text, a, b, count_tokens, max_tokens) -> list[_Piece]:
  """Last resort for one enormous 'word' (WordPiece gives up at 100 characters, so rare)."""
  if b - a <= 1:
    return [_Piece(a, b, count_tokens([text[a:b]])[0])]
  mid = (a + b) // 2
  return _fit(text, [(a, mid), (mid, b)], count_tokens, max_tokens, _by_characters)


def _by_words(text, a, b, count_tokens, max_tokens) -> list[_Piece]:
  words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[a:b])]
  words = [(a + s, a + e) for s, e in words]
  return _pack(text, _fit(text, words, count_tokens, max_tokens, _by_characters), max_tokens, 0)


def _by_sentences(text, a, b, count_tokens, max_tokens) -> list[_Piece]:
  sentences = _spans(text, _SENTENCE_END, a, b)
  return _fit(text, sentences, count_tokens, max_tokens, _by_words)


def _pack(text, pieces: list[_Piece], max_tokens: int, overlap: int,
          groups: list[int] | None = None) -> list[_Piece]:
  """Greedy packing of consecutive pieces into chunks of <= max_tokens.

  `groups[i]` names the paragraph of piece i: a paragraph that fits in a fresh chunk but not
  in the current one starts a new chunk instead of being cut. A new chunk opens with the
  last pieces of the previous chunk, up to `overlap` tokens.
  """
  groups = groups if groups is not None else list(range(len(pieces)))
  group_tokens = {}
  for piece, g in zip(pieces, groups):
    group_tokens[g] = group_tokens.get(g, 0) + piece.tokens
  chunks, current = [], []
  used = lambda: sum(p.tokens for p in current)

  def close():
    chunks.append(_Piece(current[0].start, current[-1].end, used()))
    tail, n = [], 0
    for p in reversed(current[1:]):  # never the whole chunk again
      if n + p.tokens > overlap:
        break
      tail.insert(0, p)
      n += p.tokens
    return tail

  fresh = True  # does `current` hold only overlap carried from the previous chunk?
  for i, (piece, g) in enumerate(zip(pieces, groups)):
    starts_group = i == 0 or groups[i - 1] != g
    whole_group_fits_fresh = group_tokens[g] <= max_tokens
    if current and not fresh and (
        used() + piece.tokens > max_tokens
        or (starts_group and whole_group_fits_fresh and used() + group_tokens[g] > max_tokens)):
      current, fresh = close(), True
    while current and used() + piece.tokens > max_tokens:
      current.pop(0)  # the overlap gives way to new text
    current.append(piece)
    fresh = False
  if current and not fresh:
    chunks.append(_Piece(current[0].start, current[-1].end, used()))
  return chunks


def split(text: str, count_tokens: CountTokens, max_tokens: int = MAX_TOKENS,
          overlap: int = OVERLAP) -> list[Chunk]:
  if max_tokens < 1 or not 0 <= overlap < max_tokens:
    raise ValueError(f"chunking: need max_tokens >= 1 and 0 <= overlap < max_tokens, got "
                     f"max_tokens={max_tokens}, overlap={overlap}.")
  paragraphs = _spans(text, _PARAGRAPH, 0, len(text))
  pieces, groups = [], []
  for g, (a, b) in enumerate(paragraphs):
    for piece in _fit(text, [(a, b)], count_tokens, max_tokens, _by_sentences):
      pieces.append(piece)
      groups.append(g)
  packed = _pack(text, pieces, max_tokens, overlap, groups)
  return [Chunk(text[p.start:p.end], p.start, p.end, p.tokens) for p in packed]
