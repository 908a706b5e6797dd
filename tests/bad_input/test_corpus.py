"""Every malformed input of the corpus gives one sentence naming the file, line or field,
and leaves the previous good state intact."""

import re

import pytest

from experiments import script
from tests.bad_input import cases_data
from tests.bad_input import cases_models

CASES = cases_data.CASES + cases_models.CASES


def test_the_corpus_is_large_and_its_names_unique():
  names = [case.name for case in CASES]
  assert len(names) == len(set(names))
  assert len(names) >= 60


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input_gives_one_sentence(case, tmp_path):
  with pytest.raises(script.USER_ERRORS) as raised:
    case.run(tmp_path)
  message = script.sentence(raised.value)
  assert "\n" not in message.strip(), message
  assert "Traceback" not in message
  assert re.search(case.expect, message), f"{message!r} does not match {case.expect!r}"
  if case.intact is not None:
    case.intact(tmp_path)
