"""A character tokenizer as in nanoGPT's shakespeare_char: the vocabulary is the sorted set of
characters in the text, ids are positions in that list."""

import json
from pathlib import Path

from research import files


class CharTokenizer:
  """encode("hi") -> [ids]; decode(ids) -> "hi"; only characters seen in `from_text` exist."""

  def __init__(self, chars):
    self.chars = list(chars)
    if len(set(self.chars)) != len(self.chars):
      raise ValueError("CharTokenizer: the character list has duplicates; expected unique chars.")
    self._id = {c: i for i, c in enumerate(self.chars)}

  @classmethod
  def from_text(cls, text: str) -> "CharTokenizer":
    return cls(sorted(set(text)))

  def encode(self, text: str) -> list[int]:
    try:
      return [self._id[c] for c in text]
    except KeyError as e:
      raise ValueError(
          f"CharTokenizer: character {e.args[0]!r} is not in the vocabulary of "
          f"{self.vocab_size} characters it was built from.") from None

  def decode(self, ids) -> str:
    return "".join(self.chars[int(i)] for i in ids)

  def id_to_piece(self, i: int) -> str:
    return self.chars[int(i)]

  @property
  def vocab_size(self) -> int:
    return len(self.chars)

  def save(self, path) -> Path:
    return files.write_json(path, {"kind": "char", "chars": self.chars})

  @classmethod
  def load(cls, path) -> "CharTokenizer":
    path = Path(path)
    try:
      data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
      raise FileNotFoundError(f"{path}: cannot read the char tokenizer ({e.strerror}).") from e
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg}).") from e
    if not isinstance(data, dict) or not isinstance(data.get("chars"), list):
      raise ValueError(f"{path}: expected a JSON object with a 'chars' list.")
    return cls(data["chars"])
