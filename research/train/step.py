"""Jitted train and eval steps: plain functions of (state, batch), with the state donated.

  graphdef, state = train_state.create(model, tx)
  train_step = make_train_step(graphdef, tx, dtype="bfloat16", seed=0)
  state, metrics = train_step(state, inputs_AxBxL, targets_AxBxL)   # A micro-batches
"""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from research.nn import losses
from research.train import state as state_lib
from research.train.state import TrainState


def loss_fn(params, graphdef, inputs_BxL, targets_BxL, dtype=jnp.float32, dropout_key=None):
  """Mean next-token cross-entropy, computed in `dtype` from the float32 master weights."""
  model = nnx.merge(graphdef, state_lib.cast_floats(params, dtype))
  logits_BxLxV, _ = model(inputs_BxL, dropout_key=dropout_key)
  return losses.cross_entropy(logits_BxLxV, targets_BxL)


def make_train_step(graphdef, tx, dtype="float32", seed=0, dropout=True, state_sharding=None):
  """A jitted step over A micro-batches (gradient accumulation): grads are their mean.

  The dropout key is fold_in(seed, step), so a resumed run draws the same masks.
  """
  dtype = jnp.dtype(dtype)

  def step(state: TrainState, inputs_AxBxL, targets_AxBxL):
    key = jax.random.fold_in(jax.random.key(seed), state.step) if dropout else None
    grad_fn = jax.value_and_grad(loss_fn)

    def micro(carry, batch):
      loss_sum, grad_sum = carry
      index, inputs_BxL, targets_BxL = batch
      micro_key = None if key is None else jax.random.fold_in(key, index)
      loss, grads = grad_fn(state.params, graphdef, inputs_BxL, targets_BxL, dtype, micro_key)
      return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

    accum = inputs_AxBxL.shape[0]
    if accum == 1:
      (loss, grads), _ = micro((0.0, jax.tree.map(jnp.zeros_like, state.params)),
                               (0, inputs_AxBxL[0], targets_AxBxL[0]))
    else:
      zeros = jax.tree.map(jnp.zeros_like, state.params)
      (loss, grads), _ = jax.lax.scan(micro, (jnp.zeros((), jnp.float32), zeros),
                                      (jnp.arange(accum), inputs_AxBxL, targets_AxBxL))
      loss = loss / accum
      grads = jax.tree.map(lambda g: g / accum, grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads)}
    return TrainState(state.step + 1, params, opt_state), metrics

  kwargs = {}
  if state_sharding is not None:
    kwargs["out_shardings"] = (state_sharding, None)
  return jax.jit(step, donate_argnames="state", **kwargs)


def make_eval_step(graphdef, dtype="float32"):
  """Mean loss on one batch, dropout off."""
  dtype = jnp.dtype(dtype)

  @jax.jit
  def eval_step(params, inputs_BxL, targets_BxL):
    return loss_fn(params, graphdef, inputs_BxL, targets_BxL, dtype)

  return eval_step
