import json
import subprocess
import sys
from pathlib import Path

import pytest

from research.data import corpus
from research.text import bpe

REPO = Path(__file__).resolve().parents[2]
VOCAB = 400  # 256 bytes + 4 specials + the corpus's characters + about 60 merges


@pytest.fixture(scope="module")
def text():
  return corpus.default_corpus()[:150_000]


@pytest.fixture(scope="module")
def tok(text, tmp_path_factory):
  return bpe.train_bpe(text, VOCAB, tmp_path_factory.mktemp("bpe") / "tok")


def test_an_unseen_word_splits_into_known_pieces_and_round_trips(tok, text):
  word = "Zorblaxifunctionality"
  assert word not in text
  ids = tok.encode(word)
  assert len(ids) > 1
  assert tok.unk_id not in ids
  assert "".join(tok.id_to_piece(i) for i in ids) == word  # no byte pieces were needed
  assert tok.decode(ids) == word
  sentence = f"We call {word} twice: {word}."
  assert tok.decode(tok.encode(sentence)) == sentence


@pytest.mark.parametrize("s", ["你好，世界。机器学习很有趣", "emoji 🙂 and café", "Ω≈ç√∫"])
def test_text_outside_the_training_alphabet_round_trips_through_bytes(tok, s):
  ids = tok.encode(s)
  assert tok.unk_id not in ids
  assert any(tok.is_byte(i) for i in ids)
  assert tok.decode(ids) == s


@pytest.mark.parametrize("s", ["  def f(x):\n\treturn  x   \n", " leading space", "a\n\n\nb", ""])
def test_whitespace_and_layout_round_trip_exactly(tok, s):
  assert tok.decode(tok.encode(s)) == s


def test_special_ids_and_vocab_size(tok):
  assert tok.vocab_size == VOCAB
  assert (tok.pad_id, tok.unk_id, tok.bos_id, tok.eos_id) == (0, 1, 2, 3)
  assert [tok.id_to_piece(i) for i in range(5)] == ["<pad>", "<unk>", "<s>", "</s>", "\n"]
  assert tok.encode("a\n\nb")[1:3] == [4, 4]  # a newline is a token, not a byte
  assert tok.is_byte(tok.piece_to_id("<0x41>"))


def test_model_and_vocab_table_are_written_and_load_back(tok, text):
  prefix = tok.model_path.with_suffix("")
  table = prefix.with_name(prefix.name + ".vocab.tsv").read_text(encoding="utf-8").splitlines()
  assert table[0] == "id\tpiece\tscore\tkind"
  assert len(table) == VOCAB + 1
  for row in table[1:]:
    i, piece, _, kind = row.split("\t")
    assert kind in ("normal", "control", "unknown", "byte", "user_defined")
    if kind == "normal" and "\\" not in piece:
      assert tok.piece_to_id(piece) == int(i)
  assert not [p for p in prefix.parent.iterdir() if p.name.endswith(".tmp")]
  loaded = bpe.BpeTokenizer.load(tok.model_path)
  sample = text[1000:3000]
  assert loaded.encode(sample) == tok.encode(sample)


def test_training_is_deterministic_and_takes_files_and_iterables(text, tmp_path):
  (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
  a = bpe.train_bpe(tmp_path / "corpus.txt", VOCAB, tmp_path / "a", seed=3)
  b = bpe.train_bpe(iter(text.split("\n\n")), VOCAB, tmp_path / "b", seed=3)
  assert (tmp_path / "a.model").read_bytes() == (tmp_path / "b.model").read_bytes()
  assert a.encode(text[:500]) == b.encode(text[:500])


def test_bad_inputs_stop_with_one_clear_sentence(tmp_path):
  with pytest.raises(ValueError, match="vocab_size=5000 is too large"):
    bpe.train_bpe("hello world\n" * 20, 5000, tmp_path / "big")
  with pytest.raises(ValueError, match="too small"):
    bpe.train_bpe("hello world\n" * 20, 100, tmp_path / "small")
  with pytest.raises(ValueError, match="empty"):
    bpe.train_bpe(["", "\n"], 300, tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="nope.model"):
    bpe.BpeTokenizer.load(tmp_path / "nope.model")
  assert not list(tmp_path.iterdir())  # failed training leaves no files behind


def test_the_seed_picks_the_sentence_sample_when_the_corpus_is_too_big(text, tmp_path):
  def train(name, seed):
    bpe.train_bpe(text, VOCAB, tmp_path / name, seed=seed, max_sentences=300)
    return (tmp_path / f"{name}.model").read_bytes()
  assert train("a", 1) == train("b", 1)
  assert train("a", 1) != train("c", 2)


def test_compression_counts_characters_bytes_and_byte_fallback(tok, text):
  stats = bpe.compression(tok, text[:20_000])
  assert stats["chars_per_token"] > 1.2  # even ~60 merges beat one character per token
  assert stats["bytes_per_token"] >= stats["chars_per_token"]
  chinese = bpe.compression(tok, "机器学习")
  assert chinese == {"tokens": 12, "chars_per_token": 4 / 12, "bytes_per_token": 1.0,
                     "byte_fallback_fraction": 1.0}


def test_the_bpe_script_trains_on_a_data_file_and_writes_its_table(text, tmp_path):
  # A subprocess, because absl flags are global: importing two scripts in one process clashes.
  (tmp_path / "data.txt").write_text(text, encoding="utf-8")
  out = subprocess.run(
      [sys.executable, "-m", "experiments.bpe", f"--data={tmp_path / 'data.txt'}",
       f"--workdir={tmp_path / 'run'}",
       f"--config={REPO / 'experiments/configs/bpe.py'}:quick,vocab_size={VOCAB},"
       f"sweep=370+{VOCAB}"],
      cwd=REPO, capture_output=True, text=True, timeout=120, check=True).stdout
  assert f"vocab_size={VOCAB}" in out and "chars/token" in out
  assert "'Zorblaxifunctionality is not a word.' -> ['Z'" in out
  result = json.loads((tmp_path / "run" / "bpe.json").read_text())
  assert result["vocab_size"] == VOCAB and result["val"]["chars_per_token"] > 1.0
  assert [r["vocab_size"] for r in result["sweep"]] == [370, VOCAB]
  assert (tmp_path / "run" / "tokenizer.vocab.tsv").exists()
  assert (tmp_path / "run" / "compression_vs_vocab.png").exists()
