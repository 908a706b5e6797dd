"""Ids back to whole characters: SmolLM2's byte-level BPE spells a CJK character or an emoji in
two to four tokens, a llama-style byte-fallback vocabulary in one <0xNN> token per byte."""

import tokenizers
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import decoders, models, normalizers

from research.text import detokenize
from research.text.pretrained import PretrainedTokenizer

FFFD = "\ufffd"
MIXED = ["您好，我是谁", "分析师报告", "a😀b", " hello 世界", "Paris is 巴黎 🇫🇷!", "naïve café",
         "数据 data 😀😀 end"]
ALPHABET = "您好，我是谁分析师报告😀🎉éa b1\n"


def test_chinese_streams_in_whole_characters(smollm2_tokenizer):
  tok = smollm2_tokenizer
  for text in ("您好，我是谁", "分析师报告"):
    ids = tok.encode(text)
    pieces = list(detokenize.pieces(tok, ids))
    assert "".join(pieces) == text
    assert not any(FFFD in p for p in pieces), pieces
    assert len(pieces) == len(ids) and "" in pieces  # some character took several tokens


@given(st.sampled_from(MIXED) | st.text(ALPHABET, max_size=16), st.data())
def test_an_answer_cut_anywhere_is_a_prefix_without_half_a_character(smollm2_tokenizer, text,
                                                                     data):
  tok = smollm2_tokenizer
  ids = tok.encode(text)
  assert tok.decode(ids) == text  # byte-level BPE spells any text
  n = data.draw(st.integers(0, len(ids)), label="cut")
  shown = detokenize.text(tok, ids[:n])
  assert FFFD not in shown and text.startswith(shown)
  assert shown == tok.decode(ids[:n]).rstrip(FFFD)  # nothing whole is held back


def test_bytes_that_never_make_a_character_are_dropped(smollm2_tokenizer):
  # The "您好，我是谁��））": the model sampled two bytes of a character, then "））".
  tok = smollm2_tokenizer
  ids = tok.encode("您好，我是谁")[:-1] + tok.encode("））")
  assert FFFD in tok.decode(ids)
  pieces = list(detokenize.pieces(tok, ids))
  assert "".join(pieces) == "您好，我是））"
  assert not any(FFFD in p for p in pieces)


def test_a_long_answer_streams_as_it_decodes(smollm2_tokenizer):
  tok = smollm2_tokenizer
  text = "".join(f"{i}: 分析师报告 says 😀 ok.\n" for i in range(12))
  ids = tok.encode(text)
  assert len(ids) > 100  # many times the window the detokenizer decodes
  assert "".join(detokenize.pieces(tok, ids)) == text


def byte_fallback_tokenizer():
  """A llama-style vocabulary: "▁" for a space, a letter a token, any other character its
  UTF-8 bytes as <0xNN> tokens; the decoder drops the leading space of the whole text."""
  vocab = {"<unk>": 0}
  for b in range(256):
    vocab[f"<0x{b:02X}>"] = len(vocab)
  for piece in ["▁", *"abcdefghijklmnopqrstuvwxyz"]:
    vocab[piece] = len(vocab)
  tok = tokenizers.Tokenizer(models.BPE(vocab, [], unk_token="<unk>", byte_fallback=True))
  tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                         normalizers.Replace(" ", "▁")])
  tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                   decoders.Fuse(), decoders.Strip(" ", 1, 0)])
  return PretrainedTokenizer(tok)


def test_byte_fallback_runs_and_leading_spaces_come_out_right():
  tok = byte_fallback_tokenizer()
  for text in ("hello world", "hello 您好您好您好您好您好 world", "您好您好您好您好您好您好"):
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    pieces = list(detokenize.pieces(tok, ids))
    assert "".join(pieces) == text  # a run of 30 byte tokens outlasts the window
    assert not any(FFFD in p for p in pieces)


def test_a_bad_byte_in_a_byte_fallback_run_keeps_what_was_shown():
  # ByteFallback decodes a run of byte tokens as one: one bad byte makes every byte of the run
  # U+FFFD, "您" included; what was shown stays and the text goes on after it.
  tok = byte_fallback_tokenizer()
  ids = tok.encode("您 ok")
  ids = ids[:4] + [tok.token_id("<0xE5>")] + ids[4:]
  assert tok.decode(ids) == FFFD * 4 + " ok"
  assert detokenize.text(tok, ids) == "您 ok"
