"""scikit-learn's digits, split and standardised on the training part only."""

import numpy as np

from research.sweeps import digits


def test_digits_are_standardised_and_split():
  x_train, y_train, x_test, y_test = digits.load()
  assert x_train.shape == (1438, 64) and x_test.shape == (359, 64)
  assert x_train.dtype == np.float32 and y_train.dtype == np.int32
  assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
  np.testing.assert_allclose(x_train.mean(0), 0, atol=1e-5)
  live = x_train.std(0) > 0  # the always-blank corner pixels stay 0 rather than dividing by 0
  np.testing.assert_allclose(x_train.std(0)[live], 1, atol=1e-4)
  assert np.all(np.isfinite(x_test))


def test_the_split_follows_the_seed():
  a, b = digits.load(seed=0), digits.load(seed=1)
  np.testing.assert_array_equal(digits.load(seed=0)[1], a[1])
  assert not np.array_equal(a[1], b[1])
  assert len(digits.load(test_fraction=0.5)[3]) == 898  # round(0.5 * 1797)
