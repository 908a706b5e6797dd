"""The optimizers as the notebook writes them: its symbols, its update order, its defaults.

  gradient descent   g = 1/m sum_i grad L_i(theta);  theta <- theta - eps*g
  momentum           v <- a*v - eps*g;  theta <- theta + v
  AdaGrad            r <- r + g*g;  theta <- theta - eps/(delta + sqrt(r)) * g
  RMSProp            r <- rho*r + (1-rho)*g*g;  theta <- theta - eps/sqrt(delta + r) * g
  Adam               s <- rho1*s + (1-rho1)*g;  r <- rho2*r + (1-rho2)*g*g;
                     s_hat = s/(1-rho1^t);  r_hat = r/(1-rho2^t);
                     theta <- theta - eps*s_hat/(sqrt(r_hat) + delta)

Each is an optax `GradientTransformation` whose update is the notebook's delta-theta, so
`optax.apply_updates(theta, update)` is theta <- theta + delta-theta. They equal the optax-style
twins up to rounding (tests/optim/test_notebook.py): momentum's v is -eps times optax's trace t;
AdaGrad adds delta outside the root where optax adds eps inside, so those two agree at 0.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from research.optim import transforms


def mean_gradient(per_example_loss: Callable) -> Callable:
  """g = 1/m sum_i grad L(theta; x_i, y_i): the gradient of the mean loss over the batch."""

  def mean_loss(theta, x_MxD, y_M):
    return jnp.mean(jax.vmap(per_example_loss, in_axes=(None, 0, 0))(theta, x_MxD, y_M))

  return jax.grad(mean_loss)


def gradient_descent(eps: float) -> optax.GradientTransformation:
  """theta <- theta - eps*g; on the full batch's mean gradient this is the notebook's GD."""

  def update_fn(g, state, params=None):
    del params
    return jax.tree.map(lambda g: -eps * g, g), state  # delta-theta = -eps*g

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class MomentumState(NamedTuple):
  v: optax.Updates  # the velocity


def momentum(eps: float, a: float = 0.9) -> optax.GradientTransformation:
  """v <- a*v - eps*g; theta <- theta + v. For constant eps, v = -eps*t of optax.trace."""

  def init_fn(theta):
    return MomentumState(v=jax.tree.map(jnp.zeros_like, theta))

  def update_fn(g, state, params=None):
    del params
    v = jax.tree.map(lambda v, g: a * v - eps * g, state.v, g)  # v <- a*v - eps*g
    return v, MomentumState(v=v)  # theta <- theta + v

  return optax.GradientTransformation(init_fn, update_fn)


class AdaGradState(NamedTuple):
  r: optax.Updates  # sum of squared gradients


def adagrad(eps: float, delta: float = 1e-7) -> optax.GradientTransformation:
  """r <- r + g*g; theta <- theta - eps/(delta + sqrt(r)) * g."""

  def init_fn(theta):
    return AdaGradState(r=jax.tree.map(jnp.zeros_like, theta))

  def update_fn(g, state, params=None):
    del params
    r = jax.tree.map(lambda r, g: r + g * g, state.r, g)  # r <- r + g*g
    step = jax.tree.map(lambda r, g: -eps / (delta + jnp.sqrt(r)) * g,  # -eps/(delta+sqrt(r))*g
                        r, g)
    return step, AdaGradState(r=r)

  return optax.GradientTransformation(init_fn, update_fn)


class RMSPropState(NamedTuple):
  r: optax.Updates  # exponential average of squared gradients


def rmsprop(eps: float, rho: float = 0.9, delta: float = 1e-6) -> optax.GradientTransformation:
  """r <- rho*r + (1-rho)*g*g; theta <- theta - eps/sqrt(delta + r) * g."""

  def init_fn(theta):
    return RMSPropState(r=jax.tree.map(jnp.zeros_like, theta))

  def update_fn(g, state, params=None):
    del params
    r = jax.tree.map(lambda r, g: rho * r + (1 - rho) * g * g,  # r <- rho*r + (1-rho)*g*g
                     state.r, g)
    step = jax.tree.map(lambda r, g: -eps / jnp.sqrt(delta + r) * g, r, g)  # -eps/sqrt(delta+r)*g
    return step, RMSPropState(r=r)

  return optax.GradientTransformation(init_fn, update_fn)


class AdamState(NamedTuple):
  t: jax.Array  # step count, int32
  s: optax.Updates  # first moment
  r: optax.Updates  # second moment


def adam(eps: float = 0.001, rho1: float = 0.9, rho2: float = 0.999, delta: float = 1e-8
         ) -> optax.GradientTransformation:
  """Adam with the notebook's s, r, rho1, rho2, bias correction and delta."""

  def init_fn(theta):
    zeros = jax.tree.map(jnp.zeros_like, theta)
    return AdamState(t=jnp.zeros([], jnp.int32), s=zeros, r=zeros)

  def update_fn(g, state, params=None):
    del params
    t = transforms.safe_increment(state.t)  # t <- t + 1
    s = jax.tree.map(lambda s, g: rho1 * s + (1 - rho1) * g, state.s, g)  # s <- rho1*s + (1-rho1)*g
    r = jax.tree.map(lambda r, g: rho2 * r + (1 - rho2) * g * g,  # r <- rho2*r + (1-rho2)*g*g
                     state.r, g)
    tf = t.astype(jnp.float32)
    s_hat = jax.tree.map(lambda s: s / (1 - rho1 ** tf).astype(s.dtype), s)  # s_hat = s/(1-rho1^t)
    r_hat = jax.tree.map(lambda r: r / (1 - rho2 ** tf).astype(r.dtype), r)  # r_hat = r/(1-rho2^t)
    # delta-theta = -eps * s_hat / (sqrt(r_hat) + delta)
    step = jax.tree.map(lambda s, r: -eps * s / (jnp.sqrt(r) + delta), s_hat, r_hat)
    return step, AdamState(t=t, s=s, r=r)

  return optax.GradientTransformation(init_fn, update_fn)
