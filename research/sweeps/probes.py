"""Measurements behind the activation and initialisation chapters' claims, on small MLPs.

  dead_fraction     units whose pre-activation is <= 0 on every training example
  sign_agreement    how often all incoming weight gradients of a unit share one sign
  xor               four noisy clusters no line separates
  collapse_matrix   a net without activations is one matrix: W_in W_1 ... W_out
  unit_spread       the largest difference between two units of one layer
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from research import optim
from research.nn import initializers
from research.sweeps import mlp

# LLVM's level 1: these small scan-heavy programs compile ~1.5x faster and run as fast.
jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 1})


def stack_params(keys, init_name: str, d_in: int, width: int, depth: int, d_out: int):
  """One param tree per key, stacked on a leading axis for `jax.vmap`."""
  init = initializers.get(init_name)
  trees = [mlp.init(k, init, d_in, width, depth, d_out) for k in keys]
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


# --- dead ReLUs --------------------------------------------------------------------------------


def dead_fraction(params, x_BxD, act) -> jax.Array:
  """Fraction of hidden units with pre-activation <= 0 on every example of x: they never fire."""
  _, (z_LxBxW, _) = mlp.apply(params, x_BxD, act, with_pre=True)
  return jnp.mean(jnp.all(z_LxBxW <= 0, axis=1))


@functools.partial(jit, static_argnames=("steps", "batch_size"))
def train_and_count_dead(params_N, keys_N, acts_N, learning_rates_N, x_train, y_train, *, steps,
                         batch_size):
  """Trains N nets (vmapped) for `steps`; returns the new params and each net's dead fraction."""
  def one(params, key, act, learning_rate):
    params = mlp.train(params, key, act, x_train, y_train, steps=steps, batch_size=batch_size,
                       learning_rate=learning_rate)
    return params, dead_fraction(params, x_train, act)
  return jax.vmap(one)(params_N, keys_N, acts_N, learning_rates_N)


# --- non-zero mean -----------------------------------------------------------------------------


@functools.partial(jit, static_argnames=("steps", "learning_rate"))
def sign_agreement(params_N, keys_N, acts_N, x_train, y_train, *, steps, learning_rate):
  """Per net: the fraction of (step, unit) pairs, over `steps` single-example SGD steps, in which
  every incoming weight gradient of a second-layer unit has the same sign.

  dL/dW2[i, j] = a_i delta_j: if every input a_i > 0 (sigmoid), the column's signs all equal
  sign(delta_j), and the unit's weights can only all grow or all shrink together.
  """
  def one(params, key, act):
    def step(params, key):
      i = jax.random.randint(key, (1,), 0, x_train.shape[0])
      grads = jax.grad(mlp.loss_fn)(params, x_train[i], y_train[i], act)
      g_WxW = grads["w_hidden"][0]  # column j: the weights into unit j of layer 2
      same = jnp.all(g_WxW > 0, axis=0) | jnp.all(g_WxW < 0, axis=0)
      params = jax.tree.map(lambda p, g: p - learning_rate * g, params, grads)
      return params, jnp.mean(same)
    _, agree = jax.lax.scan(step, params, jax.random.split(key, steps))
    return jnp.mean(agree)
  return jax.vmap(one)(params_N, keys_N, acts_N)


# --- linear collapse ---------------------------------------------------------------------------


def xor(n: int, noise: float, seed: int):
  """n points around the corners (+-1, +-1); label 1 where x1 x2 > 0 (the corners' signs agree)."""
  rng = np.random.default_rng(seed)
  corners = rng.choice([-1.0, 1.0], size=(n, 2))
  x = corners + noise * rng.normal(size=(n, 2))
  return x.astype(np.float32), (corners[:, 0] * corners[:, 1] > 0).astype(np.int32)


def collapse_matrix(params):
  """(W, b) with f(x) = x W + b, for a net whose activation is the identity."""
  w, b = params["w_in"], params["b_in"]
  for w_l, b_l in zip(params["w_hidden"], params["b_hidden"]):
    w, b = w @ w_l, b @ w_l + b_l  # (x W + b) W_l + b_l
  return w @ params["w_out"], b @ params["w_out"] + params["b_out"]


@functools.partial(jit, static_argnames=("steps", "learning_rate"))
def fit_full_batch(params_N, acts_N, x, y, *, steps, learning_rate):
  """Adam on the whole set, vmapped over nets; returns trained params and training accuracy."""
  optimizer = optim.adam(learning_rate)

  def one(params, act):
    def step(carry, _):
      params, state = carry
      grads = jax.grad(mlp.loss_fn)(params, x, y, act)
      updates, state = optimizer.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), None
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), None, length=steps)
    return params, mlp.accuracy(params, x, y, act)
  return jax.vmap(one)(params_N, acts_N)


# --- symmetry ----------------------------------------------------------------------------------


def unit_spread(params) -> jax.Array:
  """max over hidden layers and pairs of units j, k of max_i |W[i, j] - W[i, k]|, plus biases.

  Zero exactly when every unit of every hidden layer has the same incoming weights and bias.
  """
  layers = [(params["w_in"], params["b_in"])]
  layers += list(zip(params["w_hidden"], params["b_hidden"]))
  spread = [jnp.max(jnp.ptp(jnp.concatenate([w, b[None]]), axis=1)) for w, b in layers]
  return jnp.max(jnp.stack(spread))
