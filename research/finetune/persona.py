"""The persona check: does the model give its fine-tuned name when asked who it is, in
phrasings it never saw? Greedy answers, a case-insensitive match of the name."""

import json
from pathlib import Path

import jax

from research import runs
from research.generate import stream
from research.text import detokenize


def load_persona(path) -> dict:
  path = Path(path)
  persona = json.loads(path.read_text(encoding="utf-8"))
  for field in ("name", "held_out_questions"):
    if field not in persona:
      raise ValueError(f"{path}: missing field {field!r}.")
  return persona


def greedy_answer(lm, question: str, max_new_tokens: int = 48, system: str | None = None) -> str:
  tok = lm.tokenizer
  messages = ([{"role": "system", "content": system}] if system else []) + [
      {"role": "user", "content": question}]
  prompt = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=True))
  ids = list(stream.stream(lm.model, prompt, max_new_tokens, jax.random.key(0),
                           temperature=0.0, eos_id=tok.eos_id))
  return detokenize.text(tok, ids).strip()


def name_rate(lm, persona: dict, show_progress: bool = True) -> tuple[float, list[dict]]:
  """Share of held-out questions whose greedy answer contains the persona's name."""
  rows = []
  for question in runs.progress(persona["held_out_questions"], desc="persona check",
                                unit="question", disable=not show_progress):
    answer = greedy_answer(lm, question)
    rows.append({"question": question, "answer": answer,
                 "says_name": persona["name"].lower() in answer.lower()})
  return sum(r["says_name"] for r in rows) / len(rows), rows
