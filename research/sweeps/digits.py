"""scikit-learn's bundled 8x8 digits (1797 images, 10 classes; no download), standardised."""

import numpy as np


def load(test_fraction: float = 0.2, seed: int = 0):
  """(x_train, y_train, x_test, y_test): float32 features with train mean 0 and std 1, int32 labels."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top
  x, y = datasets.load_digits(return_X_y=True)
  order = np.random.default_rng(seed).permutation(len(x))
  n_test = int(round(test_fraction * len(x)))
  test, train = order[:n_test], order[n_test:]
  mean, std = x[train].mean(axis=0), x[train].std(axis=0)
  std = np.where(std > 0, std, 1.0)  # corner pixels are always 0
  scale = lambda a: ((a - mean) / std).astype(np.float32)  # pylint: disable=unnecessary-lambda-assignment
  return scale(x[train]), y[train].astype(np.int32), scale(x[test]), y[test].astype(np.int32)
