import json

import fastjsonschema
import llguidance
import llguidance.numpy
import numpy as np
import pytest

from research.generate import structured
from research.text.pretrained import PretrainedTokenizer
from tests import tiny_llama

V = 256 + len(tiny_llama.BYTE_SPECIALS)


@pytest.fixture(scope="module")
def tokenizer():
  return PretrainedTokenizer(tiny_llama.byte_tokenizer(), eos_token="<|end|>")


def _walk(tokenizer, schema, seed, steps=60):
  """A random path through the grammar: (text so far, allowed_V) before each token."""
  constraint = structured.Constraint(tokenizer, V, structured.json_grammar(schema))
  matcher = llguidance.LLMatcher(structured.ll_tokenizer(tokenizer, V),
                                 structured.json_grammar(schema))
  rng, ids = np.random.default_rng(seed), []
  for _ in range(steps):
    allowed = constraint.allowed_V()
    # the reference: llguidance's own bitmask applied to logits by its numpy helper
    logits = np.zeros((1, V), np.float32)
    bitmask = llguidance.numpy.allocate_token_bitmask(1, V)
    llguidance.numpy.fill_next_token_bitmask(matcher, bitmask)
    llguidance.numpy.apply_token_bitmask_inplace(logits, bitmask)
    np.testing.assert_array_equal(allowed, np.isfinite(logits[0]))
    yield tokenizer.decode(ids, skip_special_tokens=True), allowed
    if constraint.complete():
      return
    token = int(rng.choice(np.flatnonzero(allowed[:256])))
    ids.append(token)
    constraint.advance(token)
    matcher.consume_token(token)


def _valid(text, validate):
  try:
    validate(json.loads(text))
    return True
  except (ValueError, fastjsonschema.JsonSchemaException):
    return False


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_mask_is_llguidances_and_eos_comes_only_with_a_whole_answer(tokenizer, seed):
  schema = {"type": "integer", "minimum": 0, "maximum": 999}  # "12" may end or go on
  validate = fastjsonschema.compile(schema)
  eos = tokenizer.eos_id
  seen = list(_walk(tokenizer, schema, seed))
  for text, allowed in seen:
    assert allowed[eos] == _valid(text, validate), text
  assert _valid(seen[-1][0], validate)
  assert any(allowed[eos] and allowed[:256].any() for _, allowed in seen)  # may end, or go on


def test_a_schema_walk_ends_complete_and_valid(tokenizer):
  schema = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 2},
                                             "b": {"type": "boolean"}},
            "required": ["a", "b"], "additionalProperties": False}
  text, allowed = list(_walk(tokenizer, schema, 3))[-1]
  assert fastjsonschema.compile(schema)(json.loads(text)) is not None
  assert np.flatnonzero(allowed).tolist() == [tokenizer.eos_id]  # complete: EOS alone


def test_bad_schemas_and_vocabularies_are_one_sentence(tokenizer):
  with pytest.raises(ValueError, match="not a JSON schema this server can follow"):
    structured.json_grammar({"type": "strng"})
  words = PretrainedTokenizer(tiny_llama.byte_tokenizer(), eos_token=None)
  with pytest.raises(ValueError, match="no EOS token"):
    structured.ll_tokenizer(words, V)
