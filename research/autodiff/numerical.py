"""Finite differences: the derivative as the slope, the check every gradient must pass."""

import numpy as np


def central_difference(f, x, h: float):
  """f'(x) ~ (f(x + h) - f(x - h)) / 2h, with error O(h^2) for smooth f."""
  x = np.asarray(x, dtype=np.float64)
  return (f(x + h) - f(x - h)) / (2.0 * h)


def forward_difference(f, x, h: float):
  """f'(x) ~ (f(x + h) - f(x)) / h, with error O(h)."""
  x = np.asarray(x, dtype=np.float64)
  return (f(x + h) - f(x)) / h


def convergence_order(steps, errors) -> float:
  """Slope of log(error) against log(h): the p in error ~ C h^p."""
  slope, _ = np.polyfit(np.log(np.asarray(steps)), np.log(np.asarray(errors)), 1)
  return float(slope)
