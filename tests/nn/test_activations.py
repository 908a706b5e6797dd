import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from research.nn import activations as act

# Avoid x = 0 exactly, where relu-like functions have a kink and jax.grad picks a side.
_X = jnp.concatenate([jnp.linspace(-6.0, -1e-3, 200), jnp.linspace(1e-3, 6.0, 200)])


@pytest.mark.parametrize("name", sorted(act.FUNCTIONS))
def test_closed_form_derivative_matches_jax_grad(name):
  f, df = act.FUNCTIONS[name]
  with jax.enable_x64(True):
    x = _X.astype(jnp.float64)
    np.testing.assert_allclose(df(x), jax.vmap(jax.grad(f))(x), rtol=1e-10, atol=1e-12)


def test_against_jax_nn():
  np.testing.assert_allclose(act.sigmoid(_X), jax.nn.sigmoid(_X), rtol=1e-6)
  np.testing.assert_allclose(act.relu(_X), jax.nn.relu(_X))
  np.testing.assert_allclose(act.leaky_relu(_X, 0.1), jax.nn.leaky_relu(_X, 0.1))
  np.testing.assert_allclose(act.gelu(_X), jax.nn.gelu(_X, approximate=True), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(act.gelu(_X, approximate=False), jax.nn.gelu(_X, approximate=False),
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(act.silu(_X), jax.nn.silu(_X), rtol=1e-6)


def test_exact_gelu_derivative_and_leaky_slope():
  with jax.enable_x64(True):
    x = _X.astype(jnp.float64)
    exact = jax.vmap(jax.grad(lambda t: act.gelu(t, approximate=False)))(x)
    np.testing.assert_allclose(act.gelu_grad(x, approximate=False), exact, rtol=1e-10, atol=1e-12)
    leaky = jax.vmap(jax.grad(lambda t: act.leaky_relu(t, 0.3)))(x)
    np.testing.assert_allclose(act.leaky_relu_grad(x, 0.3), leaky, rtol=1e-12)


def test_sigmoid_derivative_peaks_at_a_quarter():
  assert float(act.sigmoid_grad(0.0)) == 0.25
  assert float(jnp.max(act.sigmoid_grad(_X))) < 0.25


def test_prelu_slope_gradient_matches_jax():
  with jax.enable_x64(True):
    x = _X.astype(jnp.float64)
    want = jax.vmap(jax.grad(act.prelu, argnums=(0, 1)), in_axes=(0, None))(x, 0.3)
    dx, da = act.prelu_grad(x, 0.3)
    np.testing.assert_allclose(dx, want[0], rtol=1e-12)
    np.testing.assert_allclose(da, want[1], rtol=1e-12)


@pytest.mark.parametrize("channels", [1, 4])
def test_prelu_module_learns_its_slope(channels):
  layer = act.PReLU(channels, init_slope=0.25)
  x_BxC = jnp.array([[-1.0, 2.0, -3.0, 0.5], [1.0, -2.0, 3.0, -0.5]])
  np.testing.assert_allclose(layer(x_BxC), jnp.where(x_BxC > 0, x_BxC, 0.25 * x_BxC))
  grads = nnx.grad(lambda m: jnp.sum(m(x_BxC)))(layer)
  slope_grad = grads.slope[...]
  assert slope_grad.shape == (channels,)
  negatives = jnp.where(x_BxC > 0, 0.0, x_BxC)  # d/da sum prelu = sum of the negative inputs
  want = negatives.sum() if channels == 1 else negatives.sum(axis=0)
  np.testing.assert_allclose(slope_grad, jnp.broadcast_to(want, (channels,)))
