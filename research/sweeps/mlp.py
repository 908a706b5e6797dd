"""The sweeps' plain MLP as pure functions over a params dict, built so that many of them train
at once.

Hidden layers 2..depth share one shape, so they are stacked (depth-1, W, W) and applied with
`lax.scan`: a depth-64 net compiles as fast as a depth-2 one. The activation is chosen by an
integer index through `lax.switch`; under `jax.vmap` with a batched index that becomes a select,
so nets with different activations (and inits, and seeds) run in one compiled program. Every net
carries one PReLU slope per layer; for the other activations it is unused (its gradient is 0).

  params = init(key, initializers.get("kaiming"), d_in=64, width=32, depth=8, d_out=10)
  logits_BxV, hidden = apply(params, x_BxD, ACTIVATIONS.index("relu"))
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from research import optim
from research.nn import activations
from research.nn import losses

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "prelu", "gelu", "identity")
PRELU_INIT = 0.25
LEAKY_SLOPE = 0.01


def _branches():
  return (
      lambda x, a: activations.sigmoid(x),
      lambda x, a: activations.tanh(x),
      lambda x, a: activations.relu(x),
      lambda x, a: activations.leaky_relu(x, LEAKY_SLOPE),
      activations.prelu,
      lambda x, a: activations.gelu(x),
      lambda x, a: x,
  )


def activate(x, act, slope):
  """Activation number `act` (an int, or a traced index under vmap) of ACTIVATIONS."""
  if isinstance(act, int):
    return _branches()[act](x, slope)
  return jax.lax.switch(act, _branches(), x, slope)


def init(key, initializer: Callable, d_in: int, width: int, depth: int, d_out: int,
         dtype=jnp.float32) -> dict:
  """Weights from `initializer(key, shape, dtype)`, biases 0, PReLU slopes 0.25."""
  if depth < 1:
    raise ValueError(f"depth must be >= 1 hidden layer; got {depth}.")
  k_in, k_hidden, k_out = jax.random.split(key, 3)
  hidden_keys = jax.random.split(k_hidden, max(depth - 1, 1))[: depth - 1]
  w_hidden = [initializer(k, (width, width), dtype) for k in hidden_keys]
  return {
      "w_in": initializer(k_in, (d_in, width), dtype),
      "b_in": jnp.zeros((width,), dtype),
      "w_hidden": (jnp.stack(w_hidden) if w_hidden
                   else jnp.zeros((0, width, width), dtype)),  # (depth-1, W, W)
      "b_hidden": jnp.zeros((depth - 1, width), dtype),
      "w_out": initializer(k_out, (width, d_out), dtype),
      "b_out": jnp.zeros((d_out,), dtype),
      "slope": jnp.full((depth,), PRELU_INIT, dtype),
  }


def apply(params, x_BxD, act, with_pre: bool = False):
  """Logits (B, V) and every hidden layer's output, stacked (depth, B, W).

  With `with_pre`, the second value is (pre-activations, outputs), both (depth, B, W).
  """
  z_BxW = x_BxD @ params["w_in"] + params["b_in"]
  h_BxW = activate(z_BxW, act, params["slope"][0])

  def layer(h_BxW, layer_params):
    w_WxW, b_W, slope = layer_params
    z_BxW = h_BxW @ w_WxW + b_W
    h_BxW = activate(z_BxW, act, slope)  # h <- f(h W + b)
    return h_BxW, (z_BxW, h_BxW)

  last_BxW, (z_LxBxW, h_LxBxW) = jax.lax.scan(
      layer, h_BxW, (params["w_hidden"], params["b_hidden"], params["slope"][1:]))
  hidden_LxBxW = jnp.concatenate([h_BxW[None], h_LxBxW])
  logits_BxV = last_BxW @ params["w_out"] + params["b_out"]
  if with_pre:
    return logits_BxV, (jnp.concatenate([z_BxW[None], z_LxBxW]), hidden_LxBxW)
  return logits_BxV, hidden_LxBxW


def loss_fn(params, x_BxD, labels_B, act):
  logits_BxV, _ = apply(params, x_BxD, act)
  return losses.cross_entropy(logits_BxV, labels_B)  # mean -log p(correct class)


def accuracy(params, x_BxD, labels_B, act):
  logits_BxV, _ = apply(params, x_BxD, act)
  return jnp.mean(jnp.argmax(logits_BxV, axis=-1) == labels_B)


def layer_weight_grads(grads) -> jax.Array:
  """||dL/dW_l|| for each hidden layer l = 1..depth (the input layer is layer 1)."""
  first = jnp.sqrt(jnp.sum(grads["w_in"] ** 2))[None]
  rest = jnp.sqrt(jnp.sum(grads["w_hidden"] ** 2, axis=(1, 2)))
  return jnp.concatenate([first, rest])


def init_stats(params, x_BxD, labels_B, act) -> dict:
  """At initialisation: each layer's activation std and weight-gradient norm."""
  _, hidden_LxBxW = apply(params, x_BxD, act)
  grads = jax.grad(loss_fn)(params, x_BxD, labels_B, act)
  return {"act_std": jnp.std(hidden_LxBxW, axis=(1, 2)), "grad_norm": layer_weight_grads(grads)}


def sgd_step(params, opt_state, key, act, x_train, y_train, *, batch_size: int, optimizer):
  """One step on a minibatch drawn (with replacement) by `key`."""
  idx_B = jax.random.randint(key, (batch_size,), 0, x_train.shape[0])
  grads = jax.grad(loss_fn)(params, x_train[idx_B], y_train[idx_B], act)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def train(params, key, act, x_train, y_train, *, steps: int, batch_size: int,
          learning_rate: float, momentum: float = 0.9):
  """SGD with momentum on random minibatches, all inside one `lax.scan`; returns final params."""
  optimizer = optim.sgd(learning_rate, momentum=momentum)

  def step(carry, key):
    return sgd_step(*carry, key, act, x_train, y_train, batch_size=batch_size,
                    optimizer=optimizer), None

  (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)),
                                jax.random.split(key, steps))
  return params
