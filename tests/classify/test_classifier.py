"""ICLClassifier on models whose right answer is known: a tiny model with constructed logits,
and SmolLM2-135M-Instruct on four texts it gets right once calibrated."""

import numpy as np
import pytest

from research.classify import ICLClassifier
from tests.classify import tiny
from tests.classify.tiny import CLASS_EXAMPLES, INSTRUCTION, TEXTS

# Next-token logits c, the same after any input. The names are w10 (one token), w11 w12 and
# w13 w14 w15. Summed log-probs favour the short name; per token the three-token name is best;
# greedy decoding repeats the top token w13.
LOGITS = np.zeros(tiny.VOCAB)
LOGITS[[10, 11, 12, 13, 14, 15]] = [2.0, 3.0, 3.0, 4.6, 4.5, 4.4]
LOGP = LOGITS - np.log(np.sum(np.exp(LOGITS)))  # log softmax(c)
NAME_LOGP = [LOGP[10], LOGP[11] + LOGP[12], LOGP[13] + LOGP[14] + LOGP[15]]


@pytest.fixture(scope="module")
def constant():
  return tiny.constant_lm(LOGITS)


def test_label_scores_are_the_summed_log_probs_of_each_name(constant):
  clf = ICLClassifier(constant, CLASS_EXAMPLES, instruction=INSTRUCTION)
  np.testing.assert_allclose(clf.label_logprobs(TEXTS), [NAME_LOGP] * len(TEXTS), atol=1e-5)
  assert clf.predict(TEXTS) == ["w10"] * len(TEXTS)  # -3.9 beats -5.9 and -4.3
  proba = clf.predict_proba(TEXTS)
  expected = np.exp(NAME_LOGP) / np.sum(np.exp(NAME_LOGP))
  np.testing.assert_allclose(proba, [expected] * len(TEXTS), atol=1e-5)


def test_length_normalisation_picks_the_best_name_per_token(constant):
  clf = ICLClassifier(constant, CLASS_EXAMPLES, instruction=INSTRUCTION, normalize_length=True)
  assert clf.predict(TEXTS) == ["w13 w14 w15"] * len(TEXTS)  # -1.4 per token beats -3.9


@pytest.mark.parametrize("normalize_length", [False, True])
def test_calibration_removes_a_preference_that_ignores_the_text(constant, normalize_length):
  # The content-free inputs get the same scores as every text, so p / p_cf is uniform.
  clf = ICLClassifier(constant, CLASS_EXAMPLES, instruction=INSTRUCTION, calibrate=True,
                      normalize_length=normalize_length)
  np.testing.assert_allclose(clf.predict_proba(TEXTS), 1 / 3, atol=1e-5)


def test_generate_mode_returns_an_answer_that_is_no_class_as_it_is(constant):
  clf = ICLClassifier(constant, CLASS_EXAMPLES, mode="generate", instruction=INSTRUCTION,
                      max_new_tokens=3)
  assert clf.generate(TEXTS) == ["w13 w13 w13"] * len(TEXTS)
  assert clf.predict(TEXTS) == ["w13 w13 w13"] * len(TEXTS)
  np.testing.assert_allclose(clf.predict_proba(TEXTS), 1 / 3)  # no class: a uniform row


def test_generate_mode_one_hot_on_the_class_it_names():
  logits = np.zeros(tiny.VOCAB)
  logits[10] = 3.0  # greedy says w10, a class name
  clf = ICLClassifier(tiny.constant_lm(logits), CLASS_EXAMPLES, mode="generate",
                      instruction=INSTRUCTION, max_new_tokens=1)
  assert clf.predict(TEXTS) == ["w10"] * len(TEXTS)
  np.testing.assert_array_equal(clf.predict_proba(TEXTS), [[1.0, 0.0, 0.0]] * len(TEXTS))


def test_generate_mode_matches_a_class_name_cut_by_the_token_budget():
  logits = np.zeros(tiny.VOCAB)
  logits[13] = 3.0  # greedy says w13, then is stopped: the start of "w13 w14 w15"
  clf = ICLClassifier(tiny.constant_lm(logits), CLASS_EXAMPLES, mode="generate",
                      instruction=INSTRUCTION, max_new_tokens=1)
  assert clf.generate(TEXTS) == ["w13"] * len(TEXTS)
  assert clf.predict(TEXTS) == ["w13 w14 w15"] * len(TEXTS)
  np.testing.assert_array_equal(clf.predict_proba(TEXTS), [[0.0, 0.0, 1.0]] * len(TEXTS))


def test_bad_arguments_are_named(lm):
  with pytest.raises(ValueError, match="mode='vote'"):
    ICLClassifier(lm, CLASS_EXAMPLES, mode="vote")
  with pytest.raises(ValueError, match="at least two classes"):
    ICLClassifier(lm, {"w10": "w20"})


@pytest.mark.slow
def test_smollm2_classifies_four_texts(smollm2_lm):
  examples = {"Sports": "The goalkeeper saved a penalty.", "Science": "The telescope found a "
              "new comet.", "Food": "Bake the bread for forty minutes.", "Finance": "Stocks fell "
              "after the earnings report."}
  texts = ["The striker scored twice.", "Chemists found a new catalyst.",
           "Whisk the eggs with sugar.", "The central bank raised rates."]
  clf = ICLClassifier(smollm2_lm, examples, calibrate=True)
  proba = clf.predict_proba(texts)
  np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
  assert clf.predict(texts) == list(examples)  # one text per class, in the demos' order
  # Uncalibrated, the last demonstration's class wins every text (the recency bias of Zhao et
  # al. 2021 that calibration removes); if a prompt change fixes that, drop this line.
  raw = [clf.classes[i] for i in np.argmax(clf.label_logprobs(texts), axis=1)]
  assert raw == ["Finance"] * 4
