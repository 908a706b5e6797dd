"""The persona check: the persona file, and the share of answers that say the name."""

import json

import pytest

from research.finetune import persona


def test_a_persona_file_without_its_questions_is_named(tmp_path):
  (tmp_path / "ada.json").write_text(json.dumps({"name": "Ada"}))
  with pytest.raises(ValueError, match=r"ada\.json: missing field 'held_out_questions'"):
    persona.load_persona(tmp_path / "ada.json")


def test_name_rate_counts_answers_that_say_the_name_in_any_case(monkeypatch):
  answers = {"Who are you?": "I am ADA, an assistant.", "Your name?": "I have none.",
             "Introduce yourself.": "ada here"}
  monkeypatch.setattr(persona, "greedy_answer", lambda lm, question: answers[question])
  rate, rows = persona.name_rate(None, {"name": "Ada", "held_out_questions": list(answers)},
                                 show_progress=False)
  assert rate == pytest.approx(2 / 3)
  assert [r["says_name"] for r in rows] == [True, False, True]
  assert rows[1] == {"question": "Your name?", "answer": "I have none.", "says_name": False}
