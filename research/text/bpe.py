"""Byte-pair encoding with sentencepiece, set up so that decode(encode(text)) == text for any text.

  tok = train_bpe(corpus.default_corpus(), vocab_size=2000, model_prefix="runs/bpe/tok")
  ids = tok.encode("Return the number of items.")   # [..]; tok.decode(ids) gives the text back

Choices that make the round trip exact and no word unknown:
- byte_fallback: a character outside the vocabulary becomes its UTF-8 bytes (<0xE4> ...),
  so Chinese or emoji never map to <unk>;
- identity normalization, no dummy prefix, extra whitespace kept: the text is not rewritten
  (NFKC would turn "ﬁ" into "fi"; collapsing spaces would break indented code);
- ids fixed: pad 0 (so zero-padded batches are padding), unk 1, bos 2, eos 3, and the
  newline 4: training sentences are lines, so without it every newline would cost a byte token.
"""

import io
import os
import random
import re
from collections.abc import Iterable
from pathlib import Path

import sentencepiece as spm

from research import files

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
USER_SYMBOLS = ("\n",)  # ids 4, ...: always one piece each
# sentencepiece silently skips longer sentences, so longer lines are cut into pieces this long.
_MAX_SENTENCE_CHARS = 2048


class BpeTokenizer:
  """A trained sentencepiece model: encode, decode, and the piece behind each id."""

  def __init__(self, processor: spm.SentencePieceProcessor, model_path: Path | None = None):
    self._sp = processor
    self.model_path = model_path

  @classmethod
  def load(cls, model_path) -> "BpeTokenizer":
    model_path = Path(model_path)
    try:
      data = model_path.read_bytes()
    except OSError as e:
      raise FileNotFoundError(
          f"{model_path}: cannot read the sentencepiece model ({e.strerror}).") from e
    processor = spm.SentencePieceProcessor()
    try:
      processor.LoadFromSerializedProto(data)
    except RuntimeError as e:
      raise ValueError(f"{model_path}: not a sentencepiece model ({e}).") from e
    return cls(processor, model_path)

  def encode(self, text: str) -> list[int]:
    return self._sp.encode(text)

  def encode_pieces(self, text: str) -> list[str]:
    """The pieces `encode` picks, e.g. ['▁the', '▁dict', 'ion', 'ary']."""
    return self._sp.encode(text, out_type=str)

  def decode(self, ids) -> str:
    return self._sp.decode([int(i) for i in ids])

  def id_to_piece(self, i: int) -> str:
    return self._sp.id_to_piece(int(i))

  def piece_to_id(self, piece: str) -> int:
    return self._sp.piece_to_id(piece)

  def is_byte(self, i: int) -> bool:
    return self._sp.is_byte(int(i))

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def pad_id(self) -> int:
    return self._sp.pad_id()

  @property
  def unk_id(self) -> int:
    return self._sp.unk_id()

  @property
  def bos_id(self) -> int:
    return self._sp.bos_id()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  def vocab_table(self) -> str:
    """The token<->id table as TSV: id, piece (tab, newline, backslash escaped), score, kind."""
    rows = ["id\tpiece\tscore\tkind"]
    for i in range(self.vocab_size):
      piece = self.id_to_piece(i)
      piece = piece.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
      rows.append(f"{i}\t{piece}\t{self._sp.get_score(i):g}\t{self._kind(i)}")
    return "\n".join(rows) + "\n"

  def _kind(self, i: int) -> str:
    if self._sp.is_byte(i):
      return "byte"
    if self._sp.is_unknown(i):
      return "unknown"
    if self._sp.is_control(i):
      return "control"
    if self._sp.id_to_piece(i) in USER_SYMBOLS:
      return "user_defined"
    return "normal"


def compression(tokenizer: BpeTokenizer, text: str) -> dict[str, float]:
  """How much the tokenizer shortens `text`: characters and UTF-8 bytes per token, and the share
  of tokens that are byte-fallback pieces (characters the vocabulary lacks)."""
  ids = tokenizer.encode(text)
  n = max(len(ids), 1)
  return {"tokens": len(ids),
          "chars_per_token": len(text) / n,
          "bytes_per_token": len(text.encode("utf-8")) / n,
          "byte_fallback_fraction": sum(map(tokenizer.is_byte, ids)) / n}


def train_bpe(texts: Iterable[str] | str | os.PathLike, vocab_size: int, model_prefix,
              *, character_coverage: float = 1.0, seed: int = 0,
              max_sentences: int = 2_000_000) -> BpeTokenizer:
  """Trains a BPE model; writes MODEL_PREFIX.model and MODEL_PREFIX.vocab.tsv atomically.

  `texts` is the text itself (a str), a path (a pathlib.Path, or a one-line str naming an
  existing file or folder of .txt/.md files), or an iterable of documents. Lines are the
  training sentences; with more than `max_sentences` lines, a sample of that many is drawn,
  seeded by `seed`. `character_coverage` < 1 leaves the rarest characters to byte fallback.
  """
  if vocab_size <= 0:
    raise ValueError(f"vocab_size={vocab_size}: expected a positive number of pieces.")
  model_prefix = Path(model_prefix)
  sentences = _sample(_sentences(_documents(texts)), max_sentences, seed)
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=character_coverage,
        byte_fallback=True,
        pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
        user_defined_symbols=list(USER_SYMBOLS),
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,  # runs of spaces (indentation) become single pieces
        split_digits=True,  # numbers become digit sequences, as in Llama's tokenizer
        max_sentence_length=4 * _MAX_SENTENCE_CHARS,  # in bytes; a UTF-8 char is <= 4
        input_sentence_size=0,  # _sample already drew them: sentencepiece's own draw ignores seeds
        num_threads=max(1, min(4, os.cpu_count() or 1)),
        minloglevel=2,
    )
  except RuntimeError as e:
    raise ValueError(_explain(e, vocab_size)) from e
  model_path = files.write_bytes(model_prefix.with_name(model_prefix.name + ".model"),
                                 model.getvalue())
  tokenizer = BpeTokenizer.load(model_path)
  files.write_text(model_prefix.with_name(model_prefix.name + ".vocab.tsv"),
                   tokenizer.vocab_table())
  return tokenizer


def _documents(texts) -> Iterable[str]:
  if isinstance(texts, os.PathLike) or (
      isinstance(texts, str) and "\n" not in texts and len(texts) < 4096
      and texts and Path(texts).exists()):
    from research.data import corpus  # pylint: disable=g-import-not-at-top
    return [corpus.load_text(texts)]
  if isinstance(texts, str):
    return [texts]
  return texts


def _sentences(documents: Iterable[str]) -> Iterable[str]:
  empty = True
  for document in documents:
    for line in document.splitlines():
      for start in range(0, len(line), _MAX_SENTENCE_CHARS):
        if chunk := line[start:start + _MAX_SENTENCE_CHARS]:
          empty = False
          yield chunk
  if empty:
    raise ValueError("train_bpe: the training text is empty; expected at least one non-empty line.")


def _sample(sentences: Iterable[str], k: int, seed: int) -> list[str]:
  """k sentences drawn uniformly without replacement (reservoir sampling), or all if fewer."""
  rng = random.Random(seed)
  reservoir = []
  for i, sentence in enumerate(sentences):
    if i < k:
      reservoir.append(sentence)
    elif (j := rng.randrange(i + 1)) < k:
      reservoir[j] = sentence
  return reservoir


def _explain(error: RuntimeError, vocab_size: int) -> str:
  message = str(error)
  if m := re.search(r"Vocabulary size too high \(\d+\)\. Please set it to a value <= (\d+)",
                    message):
    return (f"vocab_size={vocab_size} is too large for this corpus: sentencepiece can build at "
            f"most {m.group(1)} pieces from it.")
  if m := re.search(r"smaller than required_chars\. \d+ vs (\d+)", message):
    return (f"vocab_size={vocab_size} is too small: the corpus needs {m.group(1)} pieces for its "
            "characters, bytes and special tokens; raise vocab_size or lower character_coverage.")
  return f"sentencepiece training failed: {message}"
