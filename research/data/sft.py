"""Supervised fine-tuning data in LLaMA-Factory's layout, so its users can bring theirs.

A `dataset_dir` holds `dataset_info.json`, which names each dataset:

  {"persona": {"file_name": "persona.json", "formatting": "alpaca",
               "columns": {"prompt": "instruction", "query": "input", "response": "output"}},
   "prefs":   {"file_name": "prefs.json", "ranking": true,
               "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"}}}

An alpaca record's user turn is instruction + "\\n" + input; `system` and `history`
([[user, assistant], ...]) are optional. A sharegpt record holds a list of turns. Every record
becomes a conversation: [{"role": ..., "content": ...}, ...], the last turn the assistant's.
"""

import dataclasses
import difflib
import json
from pathlib import Path

import numpy as np

ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output",
                  "system": "system", "history": "history", "chosen": "chosen",
                  "rejected": "rejected"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                 "assistant_tag": "gpt", "system_tag": "system"}
IGNORE = -100  # label of a token that the loss skips (prompt tokens), as in LLaMA-Factory


class DataError(ValueError):
  """Malformed data: the message names the file, the record and the field."""


@dataclasses.dataclass
class Example:
  messages: list[dict]               # conversation; for SFT the last turn is the assistant's
  rejected: str | None = None        # preference data: the worse answer (messages end chosen)


def load_dataset_info(dataset_dir) -> dict:
  path = Path(dataset_dir) / "dataset_info.json"
  if not path.is_file():
    raise DataError(f"{path}: no dataset_info.json in the dataset_dir.")
  info = _read_json(path)
  if not isinstance(info, dict):
    raise DataError(f"{path}: expected an object mapping dataset names to their entries.")
  return info


def load_dataset(dataset_dir, name: str, max_samples: int | None = None) -> list[Example]:
  """The named dataset's records as conversations, in file order."""
  info = load_dataset_info(dataset_dir)
  if name not in info:
    raise DataError(f"{Path(dataset_dir) / 'dataset_info.json'}: no dataset named {name!r} "
                    f"(it has {sorted(info)}).")
  info_path = Path(dataset_dir) / "dataset_info.json"
  entry = info[name]
  if not isinstance(entry, dict):
    raise DataError(f"{info_path}: dataset {name!r}: expected an object with 'file_name', "
                    f"got {type(entry).__name__}.")
  if not isinstance(entry.get("file_name"), str):
    raise DataError(f"{info_path}: dataset {name!r} has no 'file_name' string.")
  formatting = entry.get("formatting", "alpaca")
  if formatting not in ("alpaca", "sharegpt"):
    raise DataError(f"{info_path}: dataset {name!r} has formatting {formatting!r}; expected "
                    "'alpaca' or 'sharegpt'.")
  defaults = ALPACA_COLUMNS if formatting == "alpaca" else SHAREGPT_COLUMNS
  columns = {**defaults, **_known(info_path, name, "columns", entry, defaults)}
  path = Path(dataset_dir) / entry["file_name"]
  records = _read_records(path)
  if max_samples:
    records = records[:max_samples]
  ranking = bool(entry.get("ranking", False))
  if formatting == "alpaca":
    examples = [_alpaca(path, i, r, columns, ranking) for i, r in enumerate(records)]
  else:
    tags = {**SHAREGPT_TAGS, **_known(info_path, name, "tags", entry, SHAREGPT_TAGS)}
    examples = [_sharegpt(path, i, r, columns, tags) for i, r in enumerate(records)]
  if not examples:
    raise DataError(f"{path}: no records left: dataset {name!r} is empty.")
  return examples


def _known(info_path, name: str, key: str, entry: dict, allowed: dict) -> dict:
  """entry[key] (a columns or tags mapping), each of its keys one that `allowed` has: a
  misspelled one would otherwise be ignored and its column silently read from the default."""
  given = entry.get(key, {})
  if not isinstance(given, dict):
    raise DataError(f"{info_path}: dataset {name!r}: {key!r} should be an object.")
  for k, v in given.items():
    if k not in allowed:
      near = difflib.get_close_matches(k, list(allowed), n=1)
      hint = f"; the nearest one is {near[0]!r}" if near else f"; expected some of {list(allowed)}"
      raise DataError(f"{info_path}: dataset {name!r}: {key} has no key {k!r}{hint}.")
    if not isinstance(v, str):
      raise DataError(f"{info_path}: dataset {name!r}: {key} {k!r} should name a field.")
  return given


def _read_json(path: Path):
  """A JSON file's value; a byte-order mark (Notepad writes one) is allowed."""
  try:
    text = path.read_bytes().decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise DataError(f"{path}: byte {e.start}: not UTF-8 text; save the file as UTF-8.") from None
  if not text.strip():
    raise DataError(f"{path}: the file is empty; expected JSON.")
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise DataError(f"{path}: line {e.lineno}: not valid JSON ({_problem(e)}).") from e


def _problem(e: json.JSONDecodeError) -> str:
  if e.msg.startswith("Invalid control character"):  # json's words for a pasted line break
    return "a line break or tab inside a string; write it as \\n or \\t"
  return e.msg


def _read_records(path: Path) -> list[dict]:
  if not path.is_file():
    raise DataError(f"{path}: the data file named in dataset_info.json is missing.")
  if path.suffix == ".jsonl":
    try:
      text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
      raise DataError(f"{path}: byte {e.start}: not UTF-8 text; save the file as "
                      "UTF-8.") from None
    records = []
    for line_no, line in enumerate(text.splitlines(), 1):
      if line.strip():
        try:
          records.append(json.loads(line))
        except json.JSONDecodeError as e:
          raise DataError(f"{path}: line {line_no}: not valid JSON ({_problem(e)}).") from e
    return records
  records = _read_json(path)
  if not isinstance(records, list):
    raise DataError(f"{path}: expected a JSON list of records.")
  return records


def _field(path, index, record, column, required=True, kind=str):
  if not isinstance(record, dict):
    raise DataError(f"{path}: record {index}: expected an object, got {type(record).__name__}.")
  value = record.get(column)
  if value is None or (kind is str and value == "" and required):
    if required:
      raise DataError(f"{path}: record {index}: missing field {column!r}.")
    return None
  if not isinstance(value, kind):
    raise DataError(f"{path}: record {index}: field {column!r} should be a {kind.__name__}.")
  return value


def _alpaca(path, index, record, columns, ranking) -> Example:
  messages = []
  system = _field(path, index, record, columns["system"], required=False)
  if system:
    messages.append({"role": "system", "content": system})
  for turn in _field(path, index, record, columns["history"], required=False, kind=list) or []:
    if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
      raise DataError(f"{path}: record {index}: field {columns['history']!r} should hold "
                      "[user, assistant] pairs of strings.")
    messages += [{"role": "user", "content": turn[0]}, {"role": "assistant", "content": turn[1]}]
  prompt = _field(path, index, record, columns["prompt"])
  query = _field(path, index, record, columns["query"], required=False)
  messages.append({"role": "user", "content": prompt + "\n" + query if query else prompt})
  if ranking:
    chosen = _field(path, index, record, columns["chosen"])
    rejected = _field(path, index, record, columns["rejected"])
    return Example(messages + [{"role": "assistant", "content": chosen}], rejected)
  response = _field(path, index, record, columns["response"])
  return Example(messages + [{"role": "assistant", "content": response}])


def _sharegpt(path, index, record, columns, tags) -> Example:
  turns = _field(path, index, record, columns["messages"], kind=list)
  roles = {tags["user_tag"]: "user", tags["assistant_tag"]: "assistant",
           tags["system_tag"]: "system"}
  messages = []
  system = _field(path, index, record, columns["system"], required=False)
  if system:
    messages.append({"role": "system", "content": system})
  for j, turn in enumerate(turns):
    role = roles.get(turn.get(tags["role_tag"])) if isinstance(turn, dict) else None
    content = turn.get(tags["content_tag"]) if isinstance(turn, dict) else None
    if role is None or not isinstance(content, str):
      raise DataError(f"{path}: record {index}: turn {j} of field {columns['messages']!r} needs "
                      f"{tags['role_tag']!r} in {sorted(roles)} and a string "
                      f"{tags['content_tag']!r}.")
    messages.append({"role": role, "content": content})
  from_column = len(messages) - len(turns)  # the system column's message, if any
  first = 1 if messages and messages[0]["role"] == "system" else 0
  for k in range(first, len(messages)):
    expected = ("user", "assistant")[(k - first) % 2]  # as LLaMA-Factory: they alternate
    if messages[k]["role"] != expected:
      raise DataError(f"{path}: record {index}: turn {k - from_column} of field "
                      f"{columns['messages']!r} is a {messages[k]['role']} turn; expected a "
                      f"{expected} turn (user and assistant turns alternate).")
  if not messages or messages[-1]["role"] != "assistant":
    raise DataError(f"{path}: record {index}: field {columns['messages']!r} must end with an "
                    "assistant turn.")
  return Example(messages)


def encode_conversation(tokenizer, messages, cutoff_len: int,
                        train_on_prompt: bool = False) -> tuple[list[int], list[int]]:
  """(ids, labels): the chat-templated conversation and, per token, the id the model should
  predict there or IGNORE. Assistant turns are learned; prompts only if `train_on_prompt`.

  Each assistant turn's tokens are the template's text after the generation prompt, so the
  split follows the template exactly (end-of-turn tokens are learned, as the model must stop).
  """
  ids, labels, done = [], [], ""
  for k, message in enumerate(messages):
    if message["role"] != "assistant":
      continue
    prompt = tokenizer.apply_chat_template(messages[:k], add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages[:k + 1], add_generation_prompt=False)
    if not prompt.startswith(done) or not full.startswith(prompt):
      raise DataError("the chat template does not render conversations as growing prefixes.")
    prompt_ids = tokenizer.encode(prompt[len(done):])
    answer_ids = tokenizer.encode(full[len(prompt):])
    ids += prompt_ids + answer_ids
    labels += (prompt_ids if train_on_prompt else [IGNORE] * len(prompt_ids)) + answer_ids
    done = full
  return ids[:cutoff_len], labels[:cutoff_len]


def split_train_val(examples: list, val_size: float, seed: int = 0):
  """val_size < 1 is a fraction, >= 1 a count; the split is a seeded shuffle."""
  if not val_size:
    return list(examples), []
  count = int(round(val_size * len(examples))) if val_size < 1 else int(val_size)
  count = min(max(count, 1), len(examples) - 1)
  order = np.random.default_rng(seed).permutation(len(examples))
  val = set(order[:count].tolist())
  return ([e for i, e in enumerate(examples) if i not in val],
          [e for i, e in enumerate(examples) if i in val])


def pad_batch(rows: list[tuple[list[int], list[int]]], pad_id: int, length: int | None = None):
  """inputs_BxL, targets_BxL, weights_BxL for next-token training.

  input t is ids[t], target t is labels[t + 1]; weight 0 where the target is IGNORE or padding.
  """
  length = length or max(len(ids) for ids, _ in rows) - 1
  b = len(rows)
  inputs = np.full((b, length), pad_id, np.int32)
  targets = np.zeros((b, length), np.int32)
  weights = np.zeros((b, length), np.float32)
  for i, (ids, labels) in enumerate(rows):
    n = min(len(ids) - 1, length)
    inputs[i, :n] = ids[:n]
    shifted = np.asarray(labels[1:n + 1])
    targets[i, :n] = np.where(shifted == IGNORE, 0, shifted)
    weights[i, :n] = shifted != IGNORE
  return inputs, targets, weights
