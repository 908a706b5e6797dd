"""Rule rewards for GRPO, named in `reward_function`: each maps (prompt, answer) to a float.

  contains:WORD      1 if the answer contains WORD (case-insensitive), else 0
  valid_json         1 if the answer parses as JSON, else 0
  module:function    a function of yours, function(prompt, answer) -> float

The prompt is the conversation's last user message; the answer is the decoded text.
"""

import importlib
import json
from typing import Callable

RewardFunction = Callable[[str, str], float]


def contains(word: str) -> RewardFunction:
  word = word.lower()
  return lambda prompt, answer: float(word in answer.lower())


def valid_json(prompt: str, answer: str) -> float:
  del prompt
  try:
    json.loads(answer)
  except ValueError:
    return 0.0
  return 1.0


def make_reward_function(spec: str) -> RewardFunction:
  """The reward function `spec` names (see the module docstring)."""
  if spec.startswith("contains:"):
    word = spec[len("contains:"):]
    if not word:
      raise ValueError("config field reward_function='contains:': name the word after the "
                       "colon, e.g. contains:Ada.")
    return contains(word)
  if spec == "valid_json":
    return valid_json
  module, _, name = spec.partition(":")
  if not module or not name:
    raise ValueError(f"config field reward_function={spec!r}: expected contains:WORD, "
                     "valid_json or module:function.")
  try:
    function = getattr(importlib.import_module(module), name)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"config field reward_function={spec!r}: cannot import {name} from "
                     f"module {module} ({e}).") from e
  if not callable(function):
    raise ValueError(f"config field reward_function={spec!r}: {module}.{name} is not a "
                     "function.")
  return function


def score_answers(function: RewardFunction, prompts: list[str], answers: list[str]):
  """One float per (prompt, answer); a non-number names the offending row."""
  scores = []
  for i, (prompt, answer) in enumerate(zip(prompts, answers)):
    value = function(prompt, answer)
    try:
      scores.append(float(value))
    except (TypeError, ValueError) as e:
      raise ValueError(f"reward_function returned {value!r} for answer {i}: expected a "
                       "number.") from e
  return scores
