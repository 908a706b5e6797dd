"""The ICLClassifier surface on a tiny random model, and once on SmolLM2-135M-Instruct."""

import numpy as np
import pytest

import research
from research.classify import ICLClassifier
from research.classify import prompt
from tests.classify.tiny import CLASS_EXAMPLES, INSTRUCTION, TEXTS


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


def test_score_mode(lm):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, instruction=INSTRUCTION)
  proba = clf.predict_proba(TEXTS)
  assert proba.shape == (len(TEXTS), 3)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
  assert clf.predict(TEXTS) == [clf.classes[i] for i in np.argmax(proba, axis=1)]
  # Raw scores favour the one-token name; length normalisation and calibration reweigh them.
  for options in ({"normalize_length": True}, {"calibrate": True},
                  {"normalize_length": True, "calibrate": True}):
    other = ICLClassifier(lm, CLASS_EXAMPLES, instruction=INSTRUCTION, **options)
    other_proba = other.predict_proba(TEXTS)
    np.testing.assert_allclose(other_proba.sum(axis=1), 1.0, atol=1e-12)
    assert not np.allclose(other_proba, proba)


def test_generate_mode(lm):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, mode="generate", instruction=INSTRUCTION,
                      max_new_tokens=3)
  answers = clf.generate(TEXTS)
  predictions = clf.predict(TEXTS)
  proba = clf.predict_proba(TEXTS)
  assert proba.shape == (len(TEXTS), 3)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0)
  for answer, label, row in zip(answers, predictions, proba):
    if label in clf.classes:
      assert row[clf.classes.index(label)] == 1.0
    else:  # not a class name: returned as it is, a uniform row
      assert label == answer
      np.testing.assert_allclose(row, 1 / 3)


def test_bad_arguments_are_named(lm):
  with pytest.raises(ValueError, match="mode='vote'"):
    ICLClassifier(lm, CLASS_EXAMPLES, mode="vote")
  with pytest.raises(ValueError, match="at least two classes"):
    ICLClassifier(lm, {"w10": "w20"})


@pytest.mark.slow
def test_smollm2_classifies_four_texts():
  lm = research.load_model("smollm2-135m-instruct")
  examples = {"Sports": "The goalkeeper saved a penalty.", "Science": "The telescope found a "
              "new comet.", "Food": "Bake the bread for forty minutes.", "Finance": "Stocks fell "
              "after the earnings report."}
  texts = ["The striker scored twice.", "Chemists found a new catalyst.",
           "Whisk the eggs with sugar.", "The central bank raised rates."]
  clf = ICLClassifier(lm, examples)
  proba = clf.predict_proba(texts)
  assert proba.shape == (4, 4)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
  labels = [clf.classes[i] for i in np.argmax(proba, axis=1)]
  assert all(label in examples for label in labels)
