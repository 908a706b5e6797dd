"""The cached scorer against a direct computation; calibration and length normalisation by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from research.classify import ICLClassifier
from research.classify import scoring
from research.generate import stream
from tests.classify.tiny import CLASS_EXAMPLES, INSTRUCTION, TEXTS


def _direct(lm, prompts, labels):
  """sum_j log_softmax(model(prompt + label))[P - 1 + j, label_j] for every prompt and label,
  each pair a full sequence without cache (right-padded: causality hides the padding)."""
  pairs = [(p, l) for p in prompts for l in labels]
  width = max(len(p) + len(l) for p, l in pairs)
  tokens = np.zeros((len(pairs), width), np.int32)
  for row, (p, l) in zip(tokens, pairs):
    row[:len(p) + len(l)] = p + l
  logits_BxTxV, _ = nnx.jit(lambda m, t: m(t))(lm.model, jnp.asarray(tokens))
  logp_BxTxV = np.asarray(jax.nn.log_softmax(logits_BxTxV, axis=-1))
  sums = [sum(float(logp[len(p) - 1 + j, t]) for j, t in enumerate(l))
          for logp, (p, l) in zip(logp_BxTxV, pairs)]
  return np.reshape(sums, (len(prompts), len(labels)))


@pytest.mark.parametrize("chunk", [3, 16])
def test_label_scores_equal_the_full_sequence_log_probs(lm, chunk):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, instruction=INSTRUCTION, chunk=chunk)
  assert clf.head_ids and len(clf.head_ids) > chunk  # the shared head spans several chunks
  ours = clf.label_logprobs(TEXTS)
  assert ours.shape == (len(TEXTS), len(CLASS_EXAMPLES))
  prompts = [lm.tokenizer.encode(clf.render(text)) for text in TEXTS]
  assert all(p[:len(clf.head_ids)] == clf.head_ids for p in prompts)
  np.testing.assert_allclose(ours, _direct(lm, prompts, clf.label_ids), atol=1e-5, rtol=0)

def test_scores_do_not_depend_on_the_shared_head(lm):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, instruction=INSTRUCTION, chunk=4)
  with_head = clf.label_logprobs(TEXTS)
  clf.head_ids, clf._cached = [], None  # every prompt from an empty cache
  np.testing.assert_allclose(clf.label_logprobs(TEXTS), with_head, atol=1e-5, rtol=0)


def test_greedy_answers_equal_stream(lm):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, mode="generate", instruction=INSTRUCTION,
                      max_new_tokens=6, chunk=4)
  answers = clf.generate(TEXTS)
  for text, answer in zip(TEXTS, answers):
    prompt = lm.tokenizer.encode(clf.render(text))
    ids = list(stream.stream(lm.model, prompt, 6, jax.random.key(0), temperature=0.0,
                             eos_id=lm.tokenizer.eos_id))
    assert answer == lm.tokenizer.decode(ids, skip_special_tokens=True).strip()


def test_length_normalisation_by_hand():
  logp = [[-2.0, -3.0, -4.5]]
  lengths = [1, 3, 3]
  np.testing.assert_allclose(scoring.combine(logp, lengths), logp)
  np.testing.assert_allclose(scoring.combine(logp, lengths, normalize_length=True),
                             [[-2.0, -1.0, -1.5]])  # the 3-token name now wins


def test_calibration_by_hand():
  logp = np.log([[0.6, 0.4], [0.9, 0.1]])
  content_free = np.log([[0.8, 0.2], [0.6, 0.4]])  # mean p over content-free inputs: 0.7, 0.3
  q = scoring.softmax(scoring.combine(logp, [1, 1], content_free_MxC=content_free))
  # q ∝ p / pcf: (0.6/0.7, 0.4/0.3) and (0.9/0.7, 0.1/0.3), normalised.
  expected = np.array([[0.6 / 0.7, 0.4 / 0.3], [0.9 / 0.7, 0.1 / 0.3]])
  np.testing.assert_allclose(q, expected / expected.sum(1, keepdims=True), rtol=1e-12)
  assert np.argmax(q[0]) == 1 and np.argmax(logp[0]) == 0  # calibration flips the first row
  # Unnormalised sums give the same answer: only ratios within a row matter.
  shifted = scoring.combine(logp - 3.0, [1, 1], content_free_MxC=content_free + [[1.0], [-2.0]])
  np.testing.assert_allclose(scoring.softmax(shifted), q, rtol=1e-12)


def test_calibration_with_length_normalisation_by_hand():
  logp = [[-2.0, -6.0]]
  content_free = [[-1.0, -4.0]]
  lengths = [1, 2]
  # normalised: s = (-2, -3), cf = (-1, -2); q ∝ softmax(s) / softmax(cf) ∝ (e^-1, e^-1).
  q = scoring.softmax(scoring.combine(logp, lengths, True, content_free))
  np.testing.assert_allclose(q, [[0.5, 0.5]], rtol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-20, 0), min_size=2, max_size=6))
def test_a_content_free_input_calibrates_to_uniform(row):
  q = scoring.softmax(scoring.combine([row], [1] * len(row), content_free_MxC=[row]))
  np.testing.assert_allclose(q, np.full((1, len(row)), 1 / len(row)), rtol=1e-9)


def test_a_text_longer_than_the_cache_grows_it(lm):
  clf = ICLClassifier(lm, CLASS_EXAMPLES, instruction=INSTRUCTION)
  clf.label_logprobs(TEXTS[:1])
  assert clf._cached[0].slots == 512
  long_text = " ".join(f"w{30 + i % 30}" for i in range(600))
  ours = clf.label_logprobs([long_text])
  assert clf._cached[0].slots >= 600
  prompt = lm.tokenizer.encode(clf.render(long_text))
  np.testing.assert_allclose(ours, _direct(lm, [prompt], clf.label_ids), atol=1e-5, rtol=0)
