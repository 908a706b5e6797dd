"""Answering from the knowledge base: the retrieved chunks, numbered, go into the prompt; the
chat model answers citing them as [n]. When no chunk passes the threshold the answer is
NO_ANSWER and the model is never called, so it cannot guess.

  result = answer.ask(lambda: research.load_model(), retriever, rows, "question?")
  for piece in result.pieces: print(piece, end="")     # streamed
  result.sources                                      # [(n, source, chunk index)]

Each passage is shown as "[n] (from file.pdf p. 3) ..." (store.cite), so an answer can name
the page as well as the file.
"""

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

import jax

from research.rag import retrieve
from research.rag import store

NO_ANSWER = "The knowledge base has no answer to this question."
SYSTEM = ("You answer questions using only the numbered context passages. Cite the passage "
          "you use as [n]. If the passages do not contain the answer, say that the knowledge "
          "base has no answer.")
# No tokenizer of ours packs more characters than this into one token of prose, so a longer
# question is over the limit without tokenising it (tokenising a megabyte is itself a stall).
MAX_CHARS_PER_TOKEN = 32


@dataclasses.dataclass
class Result:
  hits: list[retrieve.Hit]
  sources: list[tuple[int, str, int]]  # (n, source, chunk index) of the passages shown
  pieces: Iterator[str]               # the answer, streamed


def context_block(rows: list[dict]) -> str:
  return "\n\n".join(f"[{n}] (from {store.cite(Path(r['source']).name, r)}) {r['text'].strip()}"
                     for n, r in enumerate(rows, 1))


def messages(question: str, rows: list[dict]) -> list[dict]:
  user = (f"Context:\n{context_block(rows)}\n\nQuestion: {question}\n"
          "Answer in one sentence and cite the passage, e.g. [1].")
  return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _render(tokenizer, question: str, rows: list[dict]) -> list[int]:
  return tokenizer.encode(
      tokenizer.apply_chat_template(messages(question, rows), add_generation_prompt=True))


def check_question(tokenizer, question: str, max_prompt_tokens: int) -> int:
  """The prompt's length with an empty passage, the least any answer needs; ValueError,
  naming the question's token count, when that is over max_prompt_tokens."""
  if len(question) > max_prompt_tokens * MAX_CHARS_PER_TOKEN:  # refused before tokenising
    raise ValueError(f"question: {len(question)} characters, more than a prompt of at most "
                     f"{max_prompt_tokens} tokens can hold.")
  floor = len(_render(tokenizer, question, [{"source": "", "text": ""}]))
  if floor > max_prompt_tokens:
    raise ValueError(f"question: {len(tokenizer.encode(question))} tokens; with the "
                     f"instructions the prompt needs {floor}, more than the limit of "
                     f"{max_prompt_tokens}.")
  return floor


def prompt_ids(tokenizer, question: str, rows: list[dict], max_prompt_tokens: int):
  """The chat prompt's token ids with as many of `rows` (best first) as fit the budget;
  returns (ids, number of rows used). At least one row is kept, cut short if need be;
  ValueError when the question alone leaves no room (check_question)."""
  check_question(tokenizer, question, max_prompt_tokens)
  render = lambda rs: _render(tokenizer, question, rs)
  for used in range(len(rows), 0, -1):
    ids = render(rows[:used])
    if len(ids) <= max_prompt_tokens:
      return ids, used
  first = dict(rows[0])
  while len(ids) > max_prompt_tokens and first["text"]:
    first["text"] = first["text"][: len(first["text"]) * 3 // 4]
    ids = render([first])
  if len(ids) > max_prompt_tokens:  # the passage's file name alone did not fit
    raise ValueError(f"question: {len(tokenizer.encode(question))} tokens; with the "
                     f"instructions and one passage the prompt needs {len(ids)}, more than "
                     f"the limit of {max_prompt_tokens}.")
  return ids, 1


def ask(load_lm: Callable, retriever: retrieve.Retriever, rows: list[dict], question: str,
        mode: str = "hybrid", top_n: int = retrieve.TOP_N,
        threshold: float = retrieve.THRESHOLD, max_new_tokens: int = 128,
        max_prompt_tokens: int = 1536, seed: int = 0, temperature: float = 0.0,
        top_k: int | None = None, top_p: float | None = None,
        min_p: float | None = None) -> Result:
  """`load_lm()` returns the chat model (research.load_model); it is called only when some
  chunk passes the threshold. Greedy by default; a temperature above 0 samples (with the
  top-k, top-p and min-p filters given) from the key of `seed`."""
  hits = retriever.search(question, mode, top_n, threshold)
  if not hits:
    return Result([], [], iter([NO_ANSWER]))
  lm = load_lm()
  from research.generate import stream  # pylint: disable=g-import-not-at-top
  chosen = [rows[h.row] for h in hits]
  ids, used = prompt_ids(lm.tokenizer, question, chosen, max_prompt_tokens)
  sources = [(n, r["source"], r["chunk"]) for n, r in enumerate(chosen[:used], 1)]
  tokens = stream.stream(lm.model, ids, max_new_tokens, jax.random.key(seed),
                         temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p,
                         eos_id=lm.tokenizer.eos_id)
  return Result(hits[:used], sources, stream.stream_text(lm.tokenizer, tokens))
