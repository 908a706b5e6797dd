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
