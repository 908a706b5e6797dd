import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from research.classify import metrics

CLASSES = ["a", "b", "c", "d"]


def test_hand_cases():
  y_true = ["a", "a", "b", "b", "c", "d"]
  y_pred = ["a", "b", "b", "b", "none of them", "d"]
  assert metrics.accuracy(y_true, y_pred) == pytest.approx(4 / 6)
  # a: P 1, R 1/2 -> 2/3; b: P 2/3, R 1 -> 4/5; c: 0; d: 1.
  f1 = metrics.f1_per_class(y_true, y_pred, CLASSES)
  assert f1 == pytest.approx({"a": 2 / 3, "b": 4 / 5, "c": 0.0, "d": 1.0})
  assert metrics.macro_f1(y_true, y_pred, CLASSES) == pytest.approx((2 / 3 + 4 / 5 + 1) / 4)
  assert metrics.macro_f1(CLASSES, CLASSES, CLASSES) == 1.0
  with pytest.raises(ValueError, match="2 labels and 1 predictions"):
    metrics.accuracy(["a", "b"], ["a"])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CLASSES), st.sampled_from(CLASSES + ["junk"])),
                min_size=1, max_size=30))
def test_equal_to_scikit_learn(pairs):
  y_true, y_pred = map(list, zip(*pairs))
  assert metrics.accuracy(y_true, y_pred) == pytest.approx(sk.accuracy_score(y_true, y_pred))
  expected = sk.f1_score(y_true, y_pred, labels=CLASSES, average="macro", zero_division=0)
  assert metrics.macro_f1(y_true, y_pred, CLASSES) == pytest.approx(expected, abs=1e-12)
