"""The notebook's prompt: instruction, one demonstration per class, the text; loose matching."""

from research.classify import prompt


def test_prompt_is_instruction_then_one_demonstration_per_class_then_the_text():
  turns = prompt.messages({"Sports": "goal!", "Food": "soup."}, "rates rose")
  assert [t["role"] for t in turns] == ["system", "user", "assistant", "user", "assistant",
                                        "user"]
  assert "Sports, Food" in turns[0]["content"] and "class name only" in turns[0]["content"]
  assert [t["content"] for t in turns[1:]] == ["goal!", "Sports", "soup.", "Food", "rates rose"]


def test_answers_match_class_names_loosely_but_nothing_else():
  classes = ["Sports", "Science"]
  assert prompt.match(" sports.\n", classes) == "Sports"
  assert prompt.match('"Science"', classes) == "Science"
  assert prompt.match("Physics", classes) is None
  assert prompt.match("Sports and Science", classes) is None


def test_an_answer_cut_short_names_the_one_class_it_begins():
  classes = ["分析师报告", "分析方法", "Positive", "Negative", "Neutral"]
  assert prompt.match("分析师报", classes) == "分析师报告"
  assert prompt.match("分析师", classes) == "分析师报告"
  assert prompt.match("positi", classes) == "Positive"
  assert prompt.match("Neg", classes) == "Negative"
  assert prompt.match("分析", classes) is None  # the start of two names
  assert prompt.match("Ne", classes) is None
  assert prompt.match("", classes) is None
  assert prompt.match("Positively", classes) is None


def test_a_whole_name_wins_over_a_longer_one_it_begins():
  assert prompt.match("Sport", ["Sport", "Sports"]) == "Sport"


def test_a_chinese_class_name_cut_at_any_token_is_matched_once_unique(smollm2_tokenizer):
  # "分析师报告" is 9 SmolLM2 tokens, more than the classifier's default max_new_tokens=8,
  # so its greedy answer is always cut, often in the middle of a character.
  from research.text import detokenize  # pylint: disable=g-import-not-at-top
  classes = ["分析师报告", "分析方法", "新闻"]
  ids = smollm2_tokenizer.encode("分析师报告")
  assert len(ids) > 8
  for n in range(1, len(ids) + 1):
    said = detokenize.text(smollm2_tokenizer, ids[:n])
    expected = "分析师报告" if len(said) >= 3 else None  # "分析" begins two classes
    assert prompt.match(said, classes) == expected, (n, said)
