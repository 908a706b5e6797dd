"""One jitted train step for every objective: pretraining, SFT, DPO (and a reward model or PPO).

  parts, state = state_lib.create(model, tx, trainable=nnx.Param)   # lora.LoRAParam for LoRA
  train_step = make_train_step(parts.graphdef, tx, lm_objective, dtype="bfloat16")
  state, metrics = train_step(state, batch, parts.frozen)   # every batch leaf is A x B x ...

An objective maps (model, batch of B rows, reference, dropout_key) to (loss, metrics). The
step averages the gradients of the A micro-batches (gradient accumulation), computes in `dtype`
from the float32 master weights, and with fp16 scales the loss so small gradients survive.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from research.nn import losses
from research.train import state as state_lib
from research.train.state import TrainState

# objective(model, batch, reference, dropout_key) -> (loss, metrics)
Objective = Callable[..., tuple[jax.Array, dict]]
# reference(model_at, params, batch) -> what the objective compares against, no gradient;
# model_at(params) is the model holding trainable `params` (DPO: all LoRA B at zero)
Reference = Callable[[Callable, Any, dict], Any]

GROW_EVERY = 200  # finite fp16 steps before the loss scale doubles


def lm_objective(model, batch, reference=None, dropout_key=None):
  """Pretraining: mean next-token cross-entropy, -log p(x_{t+1} | x_<=t)."""
  del reference
  logits_BxLxV, _ = model(batch["inputs"], dropout_key=dropout_key)
  return losses.cross_entropy(logits_BxLxV, batch["targets"]), {}


def make_train_step(graphdef, tx, objective: Objective = lm_objective, *, dtype="float32",
                    reference: Reference | None = None, loss_scaling: bool = False, seed: int = 0,
                    dropout: bool = False, schedule=None, state_sharding=None):
  """step(state, batch, frozen=None) -> (state, metrics), jitted, the state donated.

  The dropout key is fold_in(fold_in(seed, step), micro-batch), so a resumed run draws the same
  masks. With `loss_scaling` (fp16) a step whose gradients overflow is skipped and the scale
  halved; it doubles after GROW_EVERY finite steps. `schedule` puts learning_rate in metrics.
  """
  dtype = jnp.dtype(dtype)
  model_at = lambda params, rng, frozen: state_lib.merge(
      graphdef, state_lib.cast_floats(params, dtype), rng, frozen)

  def scaled_loss(params, rng, frozen, batch, ref, key, scale):
    model = model_at(params, rng, frozen)
    loss, metrics = objective(model, batch, ref, key)
    rng = nnx.to_pure_dict(nnx.state(model, nnx.RngState))
    return (loss * scale if loss_scaling else loss), (loss, metrics, rng)

  grad_fn = jax.value_and_grad(scaled_loss, has_aux=True)

  def micro_step(state, rng, frozen, batch, index):
    """(loss, metrics, rng, grads) of one micro-batch of B rows."""
    key = None
    if dropout:
      key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), state.step), index)
    ref = None
    if reference is not None:
      at = lambda params: model_at(params, rng, frozen)
      ref = jax.lax.stop_gradient(reference(at, state.params, batch))
    (_, (loss, metrics, rng)), grads = grad_fn(state.params, rng, frozen, batch, ref, key,
                                               state.loss_scale)
    return loss, metrics, rng, grads

  def step(state: TrainState, batch, frozen=None):
    frozen = {} if frozen is None else frozen
    accum = jax.tree.leaves(batch)[0].shape[0]
    if accum == 1:
      loss, metrics, rng, grads = micro_step(state, state.rng, frozen,
                                             jax.tree.map(lambda x: x[0], batch), 0)
    else:
      def body(carry, indexed):
        rng, loss_sum, metric_sum, grad_sum = carry
        loss, metrics, rng, grads = micro_step(state, rng, frozen, *indexed)
        add = lambda a, b: jax.tree.map(jnp.add, a, b)
        return (rng, loss_sum + loss, add(metric_sum, metrics), add(grad_sum, grads)), None

      first = jax.tree.map(lambda x: x[0], batch)
      shapes = jax.eval_shape(lambda: micro_step(state, state.rng, frozen, first, 0))
      zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), (shapes[0], shapes[1],
                                                                   shapes[3]))
      (rng, loss, metrics, grads), _ = jax.lax.scan(
          body, (state.rng, *zeros), (batch, jnp.arange(accum)))
      # g = (1/A) sum_a g_a: the gradient of the mean loss over A x B rows
      loss, metrics, grads = jax.tree.map(lambda x: x / accum, (loss, metrics, grads))
    if loss_scaling:
      grads = jax.tree.map(lambda g: g / state.loss_scale, grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
    if schedule is not None:
      metrics["learning_rate"] = schedule(state.step)
    scale, good = state.loss_scale, state.good_steps
    if loss_scaling:
      finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
      params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
      good = jnp.where(finite, good + 1, 0)
      scale = jnp.where(finite, jnp.where(good >= GROW_EVERY, 2 * scale, scale),
                        jnp.maximum(scale / 2, 1.0))
      good = jnp.where(good >= GROW_EVERY, 0, good)
      metrics.update(finite=finite.astype(jnp.float32), loss_scale=state.loss_scale)
    return TrainState(state.step + 1, params, opt_state, rng, scale, good), metrics

  kwargs = {}
  if state_sharding is not None:
    kwargs["out_shardings"] = (state_sharding, None)
  return jax.jit(step, donate_argnames="state", **kwargs)


def make_eval_step(graphdef, objective: Objective = lm_objective, *, dtype="float32",
                   reference: Reference | None = None):
  """eval_step(params, rng, frozen, batch) -> (loss, metrics) on one batch of B rows, dropout
  off; `graphdef` is the model's eval-mode structure."""
  dtype = jnp.dtype(dtype)

  @jax.jit
  def eval_step(params, rng, frozen, batch):
    model_at = lambda p: state_lib.merge(graphdef, state_lib.cast_floats(p, dtype), rng, frozen)
    ref = None if reference is None else reference(model_at, params, batch)
    return objective(model_at(params), batch, ref, None)

  return eval_step
