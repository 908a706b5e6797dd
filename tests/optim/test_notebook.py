"""The notebook's own forms against the optax-style twins they are the same algorithm as."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import optim
from research.optim import notebook


def _params():
  return {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.array([0.5, -2.0])}


def _updates(tx, steps=300, seed=0):
  """All updates of `tx` on a fixed stream of random gradients, from one jitted scan."""
  params = _params()
  leaves, treedef = jax.tree.flatten(params)

  def gradient(key):
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef,
                              [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])

  def step(state, key):
    updates, state = tx.update(gradient(key), state, params)
    return state, updates

  keys = jax.random.split(jax.random.key(seed), steps)
  return jax.jit(lambda: jax.lax.scan(step, tx.init(params), keys))()


def _assert_close(actual, expected, rtol, atol=0.0):
  for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
    np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


def test_mean_gradient_is_the_least_squares_gradient():
  x_MxD = jax.random.normal(jax.random.key(0), (50, 3))
  y_M = jax.random.normal(jax.random.key(1), (50,))
  w = jnp.array([0.3, -1.0, 2.0])
  g = notebook.mean_gradient(lambda w, x, y: 0.5 * (x @ w - y) ** 2)(w, x_MxD, y_M)
  np.testing.assert_allclose(g, x_MxD.T @ (x_MxD @ w - y_M) / 50, rtol=1e-5)  # 1/m X^T (Xw - y)


def test_gradient_descent_is_sgd_without_momentum():
  _assert_close(_updates(notebook.gradient_descent(0.1))[1], _updates(optax.sgd(0.1))[1], rtol=0)


def test_momentum_velocity_is_minus_rate_times_optax_trace():
  """v <- a*v - eps*g and t <- g + a*t give v = -eps*t: the same steps for a constant rate.

  The two round differently and v feeds back, so this is equality up to accumulated f32
  rounding: errors stay below 1e-6 of the largest step (the damping a < 1 bounds them).
  """
  (_, v), (_, u) = _updates(notebook.momentum(0.05, a=0.9)), _updates(optax.sgd(0.05, 0.9))
  scale = max(float(jnp.max(jnp.abs(x))) for x in jax.tree.leaves(u))
  _assert_close(v, u, rtol=1e-5, atol=1e-6 * scale)


def test_adagrad_equals_optax_adagrad_without_the_offsets():
  # eps/(delta + sqrt(r)) and 1/sqrt(r + eps) differ only in where the offset goes; with both
  # offsets 0 they are one formula. r is summed exactly alike; the step rounds once.
  _assert_close(_updates(notebook.adagrad(0.1, delta=0.0))[1],
                _updates(optim.adagrad(0.1, initial_accumulator_value=0.0, eps=0.0))[1],
                rtol=1e-6)


def test_rmsprop_equals_optax_rmsprop():
  _assert_close(_updates(notebook.rmsprop(0.01, rho=0.9, delta=1e-6))[1],
                _updates(optax.rmsprop(0.01, decay=0.9, eps=1e-6))[1], rtol=1e-6)


def test_adam_equals_optax_adam():
  ours = _updates(notebook.adam(1e-3, rho1=0.8, rho2=0.99, delta=1e-8))
  theirs = _updates(optax.adam(1e-3, b1=0.8, b2=0.99, eps=1e-8))
  _assert_close(ours[1], theirs[1], rtol=1e-6)
  _assert_close((ours[0].t, ours[0].s, ours[0].r), theirs[0][0], rtol=1e-6)
