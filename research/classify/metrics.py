"""Accuracy and macro-F1 for class predictions; a prediction that names no class is wrong."""

import numpy as np


def accuracy(y_true, y_pred) -> float:
  if len(y_true) != len(y_pred) or not y_true:
    raise ValueError(f"accuracy: {len(y_true)} labels and {len(y_pred)} predictions; expected "
                     "the same non-zero number.")
  return float(np.mean([t == p for t, p in zip(y_true, y_pred)]))


def f1_per_class(y_true, y_pred, classes) -> dict[str, float]:
  """F1 = 2 P R / (P + R) per class; 0 where P + R = 0 (no hits)."""
  out = {}
  for c in classes:
    tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
    predicted = sum(p == c for p in y_pred)
    actual = sum(t == c for t in y_true)
    # 2 tp / (2 tp + fp + fn) equals 2 P R / (P + R) and needs no division by P or R alone.
    out[c] = 2 * tp / (predicted + actual) if tp else 0.0
  return out


def macro_f1(y_true, y_pred, classes) -> float:
  """Unweighted mean of the per-class F1 over `classes`."""
  if len(y_true) != len(y_pred) or not y_true:
    raise ValueError(f"macro_f1: {len(y_true)} labels and {len(y_pred)} predictions; expected "
                     "the same non-zero number.")
  return float(np.mean(list(f1_per_class(y_true, y_pred, classes).values())))
