import numpy as np

from research.autodiff import numerical


def test_differences_approach_the_derivative_at_their_orders():
  steps = np.array([1e-1, 3e-2, 1e-2, 3e-3])
  central = [abs(numerical.central_difference(np.exp, 0.3, h) - np.exp(0.3)) for h in steps]
  forward = [abs(numerical.forward_difference(np.exp, 0.3, h) - np.exp(0.3)) for h in steps]
  assert abs(numerical.convergence_order(steps, central) - 2) < 0.1
  assert abs(numerical.convergence_order(steps, forward) - 1) < 0.1


def test_central_difference_is_exact_on_a_quadratic():
  np.testing.assert_allclose(numerical.central_difference(lambda x: 3 * x**2, 2.0, 0.5), 12.0)
