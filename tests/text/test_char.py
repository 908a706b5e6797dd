import json

import pytest

from research.text import char


def test_vocabulary_is_the_sorted_set_of_characters():
  tok = char.CharTokenizer.from_text("hello, world\n")
  assert tok.chars == sorted(set("hello, world\n"))
  assert tok.vocab_size == 10
  assert tok.encode("hello") == [tok.chars.index(c) for c in "hello"]
  assert tok.decode(tok.encode("world, hello\n")) == "world, hello\n"
  assert tok.id_to_piece(0) == "\n"


def test_unknown_character_names_itself():
  tok = char.CharTokenizer.from_text("abc")
  with pytest.raises(ValueError, match="'z'"):
    tok.encode("abz")


def test_save_and_load_round_trip(tmp_path):
  tok = char.CharTokenizer.from_text("To be, or not to be: 你好\t")
  path = tok.save(tmp_path / "chars.json")
  loaded = char.CharTokenizer.load(path)
  assert loaded.chars == tok.chars
  assert json.loads(path.read_text())["kind"] == "char"
  (tmp_path / "bad.json").write_text("{\"chars\": 3}")
  with pytest.raises(ValueError, match="bad.json"):
    char.CharTokenizer.load(tmp_path / "bad.json")
  with pytest.raises(FileNotFoundError, match="missing.json"):
    char.CharTokenizer.load(tmp_path / "missing.json")
