import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from research.autodiff import custom_ops


def test_multiply_backward_is_grad_times_the_other_input():
  x, y = jnp.array([1.5, -2.0, 0.3]), jnp.array([0.8, 4.0, -1.0])
  _, vjp = jax.vjp(custom_ops.multiply, x, y)
  gz = jnp.array([1.0, 0.5, -2.0])
  gx, gy = vjp(gz)
  np.testing.assert_array_equal(gx, gz * y)
  np.testing.assert_array_equal(gy, gz * x)


def test_custom_ops_pass_check_grads():
  with jax.enable_x64(True):
    x = jnp.linspace(-3.0, 3.0, 7, dtype=jnp.float64)
    y = jnp.cos(x)
    check_grads(custom_ops.multiply, (x, y), order=1, modes=["rev"])
    check_grads(custom_ops.sigmoid, (x,), order=1, modes=["rev"])
    # and against JAX's own derivative of the plain functions
    np.testing.assert_allclose(jax.grad(lambda t: jnp.sum(custom_ops.sigmoid(t)))(x),
                               jax.grad(lambda t: jnp.sum(jax.nn.sigmoid(t)))(x), rtol=1e-12)


def test_sigmoid_backward_reads_only_the_saved_output():
  x = jnp.array([-1.0, 0.0, 2.0])
  s, residual = custom_ops._sigmoid_fwd(x)  # pylint: disable=protected-access
  np.testing.assert_array_equal(residual, s)
  (grad,) = custom_ops._sigmoid_bwd(residual, jnp.ones(3))  # pylint: disable=protected-access
  np.testing.assert_allclose(grad, s * (1 - s), rtol=1e-6)
