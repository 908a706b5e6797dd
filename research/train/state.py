"""The train state: a pytree of step, float32 master parameters and optimizer state.

The model's structure (graphdef) stays outside, so the state can be jitted, donated,
sharded and checkpointed as one pytree.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from research import optim


class TrainState(NamedTuple):
  step: jax.Array    # int32 scalar: optimizer updates applied so far
  params: Any        # float32 parameters as a plain nested dict (nnx.merge takes it as is)
  opt_state: Any


def decay_mask(params):
  """Weight decay on 2-D weights only (kernels, embeddings), never on biases or norm scales."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config) -> optax.GradientTransformation:
  """Gradient clipping, then AdamW with linear warmup and cosine decay to `min_lr`.

  `config` has lr, min_lr, warmup_steps, steps, b1, b2, weight_decay, max_grad_norm.
  """
  schedule = learning_rate_schedule(config)
  adamw = optim.adamw(schedule, b1=config.b1, b2=config.b2, eps=1e-8,
                      weight_decay=config.weight_decay, mask=decay_mask)
  if config.max_grad_norm:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adamw)
  return adamw


def learning_rate_schedule(config):
  """nanoGPT's: lr (t + 1) / (W + 1) for the W warmup steps, then cosine to min_lr at `steps`."""
  start = config.lr / (config.warmup_steps + 1)  # the first step already moves the weights
  if config.warmup_steps >= config.steps:
    return optim.linear(start, config.lr, config.warmup_steps)
  return optim.warmup_cosine(start, config.lr, config.warmup_steps, config.steps,
                             end_value=config.min_lr)


def create(model: nnx.Module, tx: optax.GradientTransformation):
  """(graphdef, TrainState) for a freshly initialised model."""
  graphdef, params = nnx.split(model)
  params = nnx.to_pure_dict(params)  # plain arrays: no Variable objects to unflatten per step
  return graphdef, TrainState(jnp.zeros((), jnp.int32), params, tx.init(params))


def abstract_state(tx, model_fn):
  """(graphdef, TrainState of ShapeDtypeStructs): the state's shape without allocating it."""
  graphdef, params = nnx.split(nnx.eval_shape(model_fn))
  params = nnx.to_pure_dict(params)
  opt_state = jax.eval_shape(tx.init, params)
  return graphdef, TrainState(jax.ShapeDtypeStruct((), jnp.int32), params, opt_state)


def cast_floats(tree, dtype):
  """Floating leaves to `dtype` (the compute copy of the float32 master weights)."""
  def cast(x):
    return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
  return jax.tree.map(cast, tree)
