import json

import pytest

from research.data import sft


def _write(tmp_path, records, entry=None, raw=None):
  (tmp_path / "d.json").write_text(raw if raw is not None else json.dumps(records))
  (tmp_path / "dataset_info.json").write_text(json.dumps({"d": entry or {"file_name": "d.json"}}))
  return tmp_path


def test_alpaca_record_becomes_a_conversation(tmp_path):
  _write(tmp_path, [{"instruction": "Add", "input": "2 and 3", "output": "5", "system": "Be exact",
                     "history": [["hi", "hello"]]}])
  [example] = sft.load_dataset(tmp_path, "d")
  assert example.messages == [
      {"role": "system", "content": "Be exact"}, {"role": "user", "content": "hi"},
      {"role": "assistant", "content": "hello"}, {"role": "user", "content": "Add\n2 and 3"},
      {"role": "assistant", "content": "5"}]


def test_custom_columns_sharegpt_and_ranking(tmp_path):
  _write(tmp_path, [{"q": "Why?", "a": "Because."}],
         {"file_name": "d.json", "columns": {"prompt": "q", "response": "a"}})
  assert sft.load_dataset(tmp_path, "d")[0].messages[-1] == {"role": "assistant",
                                                             "content": "Because."}
  _write(tmp_path, [{"conversations": [{"from": "human", "value": "x"},
                                       {"from": "gpt", "value": "y"}], "system": "s"}],
         {"file_name": "d.json", "formatting": "sharegpt"})
  assert [m["role"] for m in sft.load_dataset(tmp_path, "d")[0].messages] == [
      "system", "user", "assistant"]
  _write(tmp_path, [{"instruction": "p", "chosen": "good", "rejected": "bad"}],
         {"file_name": "d.json", "ranking": True})
  [example] = sft.load_dataset(tmp_path, "d")
  assert example.messages[-1]["content"] == "good" and example.rejected == "bad"


@pytest.mark.parametrize("records, entry, raw, message", [
    ([{"instruction": "x"}], None, None, r"d\.json: record 0: missing field 'output'"),
    ([{"instruction": "x", "output": "y"}, {"output": "y"}], None, None,
     r"record 1: missing field 'instruction'"),
    ([{"instruction": 3, "output": "y"}], None, None, r"field 'instruction' should be a str"),
    (None, None, '[{"instruction": "x",\n "output": }]', r"d\.json: line 2: not valid JSON"),
    ([{"conversations": [{"from": "gpt", "value": "y"}, {"from": "robot", "value": "z"}]}],
     {"file_name": "d.json", "formatting": "sharegpt"}, None, r"record 0: turn 1"),
    ([], None, None, "no records left"),
    ([{"instruction": "x", "output": "y"}], {"file_name": "missing.json"}, None,
     r"missing\.json: the data file named in dataset_info\.json is missing"),
])
def test_malformed_data_is_named_in_one_sentence(tmp_path, records, entry, raw, message):
  _write(tmp_path, records, entry, raw)
  with pytest.raises(sft.DataError, match=message):
    sft.load_dataset(tmp_path, "d")


def test_unknown_dataset_name(tmp_path):
  _write(tmp_path, [])
  with pytest.raises(sft.DataError, match="no dataset named 'e'"):
    sft.load_dataset(tmp_path, "e")


class _Words:
  """A tokenizer whose tokens are characters and whose template is [role]text|."""

  def apply_chat_template(self, messages, add_generation_prompt=True):
    text = "".join(f"[{m['role'][0]}]{m['content']}|" for m in messages)
    return text + ("[a]" if add_generation_prompt else "")

  def encode(self, text):
    return [ord(c) for c in text]


def test_prompt_tokens_are_masked_unless_train_on_prompt():
  messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"},
              {"role": "user", "content": "x"}, {"role": "assistant", "content": "z"}]
  ids, labels = sft.encode_conversation(_Words(), messages, cutoff_len=100)
  assert "".join(map(chr, ids)) == "[u]hi|[a]yo|[u]x|[a]z|"
  learned = "".join(chr(i) for i, l in zip(ids, labels) if l != sft.IGNORE)
  assert learned == "yo|z|"  # every assistant turn, with its end-of-turn mark
  ids, labels = sft.encode_conversation(_Words(), messages, cutoff_len=100, train_on_prompt=True)
  assert labels == ids
  ids, labels = sft.encode_conversation(_Words(), messages, cutoff_len=7)
  assert len(ids) == len(labels) == 7


def test_pad_batch_shifts_labels_and_weights_only_answers():
  inputs, targets, weights = sft.pad_batch([([1, 2, 3, 4], [-100, -100, 3, 4]), ([5, 6], [5, 6])],
                                           pad_id=0, length=4)
  assert inputs.tolist() == [[1, 2, 3, 0], [5, 0, 0, 0]]
  assert targets.tolist() == [[0, 3, 4, 0], [6, 0, 0, 0]]
  assert weights.tolist() == [[0, 1, 1, 0], [1, 0, 0, 0]]


def test_split_train_val_is_seeded_and_disjoint():
  train, val = sft.split_train_val(list(range(20)), 0.25, seed=3)
  assert len(val) == 5 and sorted(train + val) == list(range(20))
  assert sft.split_train_val(list(range(20)), 0.25, seed=3) == (train, val)
  assert len(sft.split_train_val(list(range(20)), 3)[1]) == 3


def test_a_byte_order_mark_is_read_past(tmp_path):
  """Notepad saves UTF-8 with a BOM; json.loads alone refuses it."""
  _write(tmp_path, [{"instruction": "q", "output": "a"}])
  for name in ("dataset_info.json", "d.json"):
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
  assert sft.load_dataset(tmp_path, "d")[0].messages[-1]["content"] == "a"
