import pytest

from research.data import corpus


def test_default_corpus_is_stdlib_docstrings_and_deterministic():
  text = corpus.default_corpus()
  assert 200_000 < len(text) < 5_000_000
  assert "Return" in text and "\n\n" in text
  assert corpus.default_corpus.__wrapped__() == text  # rebuilt from scratch: same text


def test_load_text_reads_a_file_or_a_folder_of_text_files(tmp_path):
  (tmp_path / "b.md").write_text("second", encoding="utf-8")
  (tmp_path / "sub").mkdir()
  (tmp_path / "sub" / "c.txt").write_text("third", encoding="utf-8")
  (tmp_path / "a.txt").write_text("first 你好", encoding="utf-8")
  (tmp_path / "skip.py").write_text("not text", encoding="utf-8")
  assert corpus.load_text(tmp_path / "a.txt") == "first 你好"
  assert corpus.load_text(tmp_path) == "first 你好\n\nsecond\n\nthird"


def test_load_text_errors_name_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.txt: no such file"):
    corpus.load_text(tmp_path / "missing.txt")
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match="empty: the folder holds no"):
    corpus.load_text(tmp_path / "empty")
  (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
  with pytest.raises(ValueError, match="latin1.txt: byte 3 is not UTF-8"):
    corpus.load_text(tmp_path / "latin1.txt")


def test_split_text_cuts_after_a_newline_near_the_fraction():
  text = "".join(f"line {i}\n" for i in range(1000))
  train, val = corpus.split_text(text, 0.1)
  assert train + val == text
  assert train.endswith("\n") and abs(len(val) / len(text) - 0.1) < 0.01
  assert corpus.split_text("no newline at all", 0.5) == ("no newli", "ne at all")
  with pytest.raises(ValueError, match="val_fraction=-0.1"):
    corpus.split_text(text, -0.1)
