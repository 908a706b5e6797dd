import numpy as np
import pytest

from research.data import tokens


@pytest.mark.parametrize("top, dtype", [(65_535, np.uint16), (65_536, np.uint32),
                                        (200_000, np.uint32)])
def test_ids_round_trip_through_a_memmap_in_the_smallest_dtype(tmp_path, top, dtype):
  ids = np.random.default_rng(0).integers(0, top + 1, size=10_001)
  ids[5] = top
  path = tokens.write_tokens(tmp_path / "t.bin", ids)
  read = tokens.open_tokens(path)
  assert isinstance(read, np.memmap)
  assert read.dtype == dtype
  np.testing.assert_array_equal(read, ids)
  assert path.stat().st_size == tokens.HEADER_BYTES + ids.size * np.dtype(dtype).itemsize


def test_explicit_dtype_raw_files_and_empty_files(tmp_path):
  path = tokens.write_tokens(tmp_path / "wide.bin", [1, 2, 3], dtype=np.uint32)
  assert tokens.open_tokens(path).dtype == np.uint32
  np.array([7, 8, 9], dtype="<u2").tofile(tmp_path / "nanogpt.bin")  # nanoGPT's train.bin
  np.testing.assert_array_equal(tokens.open_tokens(tmp_path / "nanogpt.bin", dtype="uint16"),
                                [7, 8, 9])
  assert len(tokens.open_tokens(tokens.write_tokens(tmp_path / "empty.bin", []))) == 0


def test_bad_token_files_stop_with_a_sentence_naming_them(tmp_path):
  with pytest.raises(ValueError, match="id 70000 does not fit in uint16"):
    tokens.write_tokens(tmp_path / "x.bin", [70_000], dtype=np.uint16)
  with pytest.raises(ValueError, match=">= 0"):
    tokens.write_tokens(tmp_path / "x.bin", [-1])
  path = tokens.write_tokens(tmp_path / "cut.bin", np.arange(100))
  path.write_bytes(path.read_bytes()[:-2])
  with pytest.raises(ValueError, match="cut.bin: .* truncated"):
    tokens.open_tokens(path)
  with pytest.raises(ValueError, match="pass dtype="):
    (tmp_path / "raw.bin").write_bytes(b"\1\0\2\0")
    tokens.open_tokens(tmp_path / "raw.bin")
  with pytest.raises(FileNotFoundError, match="nope.bin"):
    tokens.open_tokens(tmp_path / "nope.bin")
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_split_keeps_order_and_does_not_copy(tmp_path):
  read = tokens.open_tokens(tokens.write_tokens(tmp_path / "t.bin", np.arange(1000)))
  train, val = tokens.split_train_val(read, val_fraction=0.1)
  assert (len(train), len(val)) == (900, 100)
  assert isinstance(train, np.memmap) and isinstance(val, np.memmap)
  np.testing.assert_array_equal(np.concatenate([train, val]), np.arange(1000))
  with pytest.raises(ValueError, match="val_fraction=1"):
    tokens.split_train_val(read, 1.0)


def test_streamed_chunks_equal_one_write(tmp_path):
  ids = np.random.default_rng(3).integers(0, 70_000, size=5000)
  one = tokens.open_tokens(tokens.write_tokens(tmp_path / "one.bin", ids))
  streamed = tokens.open_tokens(
      tokens.write_token_chunks(tmp_path / "s.bin", np.array_split(ids, 7), np.uint32))
  np.testing.assert_array_equal(streamed, one)
  with pytest.raises(ValueError, match="s16.bin: ids must lie in"):
    tokens.write_token_chunks(tmp_path / "s16.bin", [ids], np.uint16)
  assert not (tmp_path / "s16.bin").exists()


def test_encoding_in_chunks_equals_encoding_the_whole_text(tmp_path):
  from research.data import corpus  # pylint: disable=g-import-not-at-top
  from research.text import bpe  # pylint: disable=g-import-not-at-top
  from research.text import char  # pylint: disable=g-import-not-at-top
  text = corpus.default_corpus()[:120_000]
  tok = bpe.train_bpe(text, 400, tmp_path / "tok")
  path = tokens.encode_to_file(tok, text, tmp_path / "t.bin", chunk_chars=5000)
  np.testing.assert_array_equal(tokens.open_tokens(path), tok.encode(text))
  chars = char.CharTokenizer.from_text(text)
  path = tokens.encode_to_file(chars, [text[:7000], text[7000:]], tmp_path / "c.bin", 999)
  np.testing.assert_array_equal(tokens.open_tokens(path), chars.encode(text))
