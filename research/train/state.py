"""The train state: a pytree of step, float32 master parameters, optimizer state, the model's
RNG streams and fp16's loss scale; and the split of a model into what trains and what stays.

The model's structure (graphdef) and its frozen part stay outside, so the state can be jitted,
donated, sharded and checkpointed as one pytree, and holds only what training changes.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from research import optim


class TrainState(NamedTuple):
  step: jax.Array        # int32 scalar: optimizer updates applied so far
  params: Any            # trainable float32 parameters as a plain nested dict (all, pretraining)
  opt_state: Any
  rng: Any               # the model's RNG streams (LoRA dropout) as a plain dict; {} when none
  loss_scale: jax.Array  # fp16's dynamic loss scale; 1 otherwise
  good_steps: jax.Array  # finite steps since the loss scale last changed


class Parts(NamedTuple):
  """A model split for training: nnx.merge(graphdef, params, rng, frozen) rebuilds it."""
  graphdef: Any          # the structure in train mode
  eval_graphdef: Any     # the structure in eval mode (LoRA dropout off)
  params: Any            # what the filter selects for training, as a plain dict
  rng: Any               # nnx.RngState variables, as a plain dict
  frozen: Any            # everything else (the base weights under LoRA); {} when all trains


def split(model: nnx.Module, trainable=nnx.Param) -> Parts:
  """Splits `model` by the filter `trainable` (nnx.Param: everything; lora.LoRAParam: LoRA)."""
  model.train()
  graphdef, params, rng, frozen = nnx.split(model, trainable, nnx.RngState, ...)
  model.eval()
  eval_graphdef = nnx.split(model, trainable, nnx.RngState, ...)[0]
  pure = nnx.to_pure_dict  # plain arrays: no Variable objects to unflatten per step
  return Parts(graphdef, eval_graphdef, pure(params), pure(rng), pure(frozen))


def merge(graphdef, params, rng, frozen) -> nnx.Module:
  return nnx.merge(graphdef, params, rng, frozen)


def init(params, rng, tx: optax.GradientTransformation, loss_scale: float = 1.0) -> TrainState:
  """The state at step 0: fresh optimizer moments, and `loss_scale` (2**15 for fp16)."""
  return TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), rng,
                    jnp.asarray(loss_scale, jnp.float32), jnp.zeros((), jnp.int32))


def create(model: nnx.Module, tx: optax.GradientTransformation, trainable=nnx.Param,
           loss_scale: float = 1.0) -> tuple[Parts, TrainState]:
  """(Parts, TrainState at step 0) for a model."""
  parts = split(model, trainable)
  return parts, init(parts.params, parts.rng, tx, loss_scale)


def abstract_state(tx, model_fn, trainable=nnx.Param) -> tuple[Parts, TrainState]:
  """Parts and TrainState of ShapeDtypeStructs: their shapes without allocating them."""
  parts = split(nnx.eval_shape(model_fn), trainable)
  return parts, jax.eval_shape(lambda: init(parts.params, parts.rng, tx))


def decay_mask(params):
  """Weight decay on 2-D weights only (kernels, embeddings), never on biases or norm scales."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config) -> optax.GradientTransformation:
  """Gradient clipping, then AdamW with linear warmup and cosine decay to `min_lr`.

  `config` has lr, min_lr, warmup_steps, steps, b1, b2, weight_decay, max_grad_norm.
  """
  return with_clipping(optim.adamw(learning_rate_schedule(config), b1=config.b1, b2=config.b2,
                                   eps=1e-8, weight_decay=config.weight_decay, mask=decay_mask),
                       config.max_grad_norm)


def with_clipping(tx, max_grad_norm: float) -> optax.GradientTransformation:
  """g <- g * min(1, c / ||g||) before `tx`; no clipping when c is 0."""
  if max_grad_norm:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), tx)
  return tx


def learning_rate_schedule(config):
  """nanoGPT's: lr (t + 1) / (W + 1) for the W warmup steps, then cosine to min_lr at `steps`."""
  start = config.lr / (config.warmup_steps + 1)  # the first step already moves the weights
  if config.warmup_steps >= config.steps:
    return optim.linear(start, config.lr, config.warmup_steps)
  return optim.warmup_cosine(start, config.lr, config.warmup_steps, config.steps,
                             end_value=config.min_lr)


def cast_floats(tree, dtype):
  """Floating leaves to `dtype` (the compute copy of the float32 master weights)."""
  def cast(x):
    return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
  return jax.tree.map(cast, tree)
