import time
import types

import numpy as np
import pytest
from flax import nnx

from research.nn import config as config_lib
from research.nn import transformer
from research.rag import answer
from research.rag import retrieve


class _CharTokenizer:
  """One token per character: lengths are easy to reason about."""
  eos_id = 0

  def encode(self, text):
    return [ord(c) % 39 + 1 for c in text]

  def decode(self, ids, skip_special_tokens=False):
    return "".join(chr(ord("a") + i % 26) for i in ids if not (skip_special_tokens and i == 0))

  def apply_chat_template(self, messages, add_generation_prompt=True):
    return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


def _lm():
  config = config_lib.llama(vocab_size=40, num_layers=1, width=16, num_heads=2, num_kv_heads=1,
                            ffn_width=24)
  return types.SimpleNamespace(model=transformer.Transformer(config, rngs=nnx.Rngs(0)),
                               tokenizer=_CharTokenizer())


TEXTS = ["alpha beta gamma", "beta delta", "epsilon"]
ROWS = [{"source": f"/docs/{i}.txt", "chunk": 0, "text": t} for i, t in enumerate(TEXTS)]


def test_answer_streams_and_numbers_its_sources():
  retriever = retrieve.Retriever(np.eye(3, dtype=np.float32), TEXTS, None)
  calls = []
  result = answer.ask(lambda: calls.append(1) or _lm(), retriever, ROWS, "beta?",
                      mode="bm25", max_new_tokens=5)
  assert calls == [1]
  assert [s[1] for s in result.sources] == ["/docs/1.txt", "/docs/0.txt"]
  assert [n for n, *_ in result.sources] == [1, 2]
  first = next(result.pieces)  # an iterator: pieces arrive one at a time
  rest = list(result.pieces)
  assert 1 <= 1 + len(rest) <= 5 and len(first + "".join(rest)) <= 5


def test_the_prompt_keeps_the_best_chunks_that_fit():
  tok = _CharTokenizer()
  full, used = answer.prompt_ids(tok, "q?", ROWS, 10_000)
  assert used == 3
  budget = len(answer.prompt_ids(tok, "q?", ROWS[:2], 10_000)[0])
  ids, used = answer.prompt_ids(tok, "q?", ROWS, budget)
  assert used == 2 and len(ids) == budget < len(full)
  ids, used = answer.prompt_ids(tok, "q?", [{"source": "s", "text": "x" * 5000}], 600)
  assert used == 1 and len(ids) <= 600


def test_a_question_that_leaves_no_room_is_refused_with_its_token_count():
  tok = _CharTokenizer()
  floor = answer.check_question(tok, "q" * 50, 10_000)
  assert answer.check_question(tok, "q" * 50, floor) == floor  # just fits
  ids, used = answer.prompt_ids(tok, "q" * 50, ROWS, floor + 5)
  assert used == 1 and len(ids) <= floor + 5
  with pytest.raises(ValueError, match=r"^question: 51 tokens; .* more than the limit of"):
    answer.prompt_ids(tok, "q" * 51, ROWS, floor)
  start = time.monotonic()
  with pytest.raises(ValueError, match=r"^question: 1048576 characters"):
    answer.prompt_ids(tok, "q" * (1 << 20), ROWS, 2048)  # refused before tokenising
  assert time.monotonic() - start < 1
