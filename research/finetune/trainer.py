"""The fine-tuning loop shared by SFT and DPO: LoRA or full, gradient accumulation, fp32, bf16
or fp16 with dynamic loss scaling, warmup + linear/cosine/constant schedules, JSONL and
TensorBoard metrics, a loss curve, adapter + optimizer checkpoints with resume.

Only the trainable parameters (the LoRA A and B, or everything for full fine-tuning) get
gradients, optimizer state and checkpoints; the frozen base is a separate argument of the
jitted step, cast once to the compute dtype.
"""

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from research import files
from research import optim
from research import runs
from research.nn import lora
from research.train import checkpoint as checkpoint_lib
from research.train import state as state_lib

DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16, "fp16": jnp.float16}
# An objective maps (model, batch of B rows, reference) to (loss, metrics).
Objective = Callable[[nnx.Module, dict, Any], tuple[jax.Array, dict]]


class FinetuneState(NamedTuple):
  step: jax.Array         # optimizer updates applied
  params: Any             # trainable parameters (nnx.State), float32
  opt_state: Any
  rng: Any                # nnx.RngState of the LoRA dropout streams
  loss_scale: jax.Array   # fp16's dynamic loss scale (1 otherwise)
  good_steps: jax.Array   # finite steps since the scale last changed


@dataclasses.dataclass
class FinetuneResult:
  model: nnx.Module       # the fine-tuned model, in eval mode, LoRA unmerged
  history: list[dict]
  evals: list[dict]
  trainable: int
  frozen: int
  steps: int
  tokens_per_s: float = math.nan
  stopped: str | None = None


def make_schedule(config, total_steps: int):
  warmup = config.warmup_steps or int(math.ceil(config.warmup_ratio * total_steps))
  lr = config.learning_rate
  if config.lr_scheduler_type == "constant":
    decay = optax.constant_schedule(lr)
  elif config.lr_scheduler_type == "linear":
    decay = optim.linear(lr, 0.0, max(total_steps - warmup, 1))
  else:
    decay = optim.warmup_cosine(lr, lr, 0, max(total_steps - warmup, 1), end_value=0.0)
  if warmup == 0:
    return decay
  return optax.join_schedules([optim.linear(0.0, lr, warmup), decay], [warmup])


def make_optimizer(config, total_steps: int):
  adamw = optim.adamw(make_schedule(config, total_steps), b1=config.adam_beta1,
                      b2=config.adam_beta2, eps=config.adam_epsilon,
                      weight_decay=config.weight_decay, mask=state_lib.decay_mask)
  if config.max_grad_norm:
    return optax.chain(optax.clip_by_global_norm(config.max_grad_norm), adamw)
  return adamw


def split_model(model, finetuning_type: str):
  """graphdef, trainable, rng, frozen."""
  trainable = lora.LoRAParam if finetuning_type == "lora" else nnx.Param
  return nnx.split(model, trainable, nnx.RngState, ...)


def make_step(graphdef, tx, objective: Objective, dtype, reference_fn=None):
  """A jitted update over A micro-batches (leading axis of every batch array)."""
  fp16 = jnp.dtype(dtype) == jnp.float16

  def loss_of(params, rng, frozen, batch, scale):
    model = nnx.merge(graphdef, params, rng, frozen)
    reference = None if reference_fn is None else reference_fn(params, rng, frozen, batch)
    loss, metrics = objective(model, batch, reference)
    return loss * scale, (loss, metrics, nnx.state(model, nnx.RngState))

  grad_fn = jax.value_and_grad(loss_of, has_aux=True)

  def step(state: FinetuneState, frozen, batch):
    def micro(carry, mb):
      rng, grad_sum, loss_sum, metric_sum = carry
      (_, (loss, metrics, rng)), grads = grad_fn(state.params, rng, frozen, mb,
                                                 state.loss_scale)
      return (rng, jax.tree.map(jnp.add, grad_sum, grads), loss_sum + loss,
              jax.tree.map(jnp.add, metric_sum, metrics)), None

    accum = jax.tree.leaves(batch)[0].shape[0]
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    first = jax.tree.map(lambda x: x[0], batch)
    metric_zeros = jax.tree.map(
        jnp.zeros_like, jax.eval_shape(lambda: loss_of(state.params, state.rng, frozen, first,
                                                       1.0)[1][1]))
    (rng, grads, loss, metrics), _ = jax.lax.scan(
        micro, (state.rng, zeros, jnp.zeros((), jnp.float32), metric_zeros), batch)
    grads = jax.tree.map(lambda g: g / (accum * state.loss_scale), grads)
    finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    if fp16:  # skip a step whose gradients overflowed and halve the scale; grow it slowly
      keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
      params, opt_state = keep(params, state.params), keep(opt_state, state.opt_state)
      good = jnp.where(finite, state.good_steps + 1, 0)
      scale = jnp.where(finite, jnp.where(good >= 200, state.loss_scale * 2, state.loss_scale),
                        jnp.maximum(state.loss_scale / 2, 1.0))
      good = jnp.where(good >= 200, 0, good)
    else:
      good, scale = state.good_steps, state.loss_scale
    metrics = jax.tree.map(lambda m: m / accum, metrics)
    metrics.update(loss=loss / accum, grad_norm=optax.tree.norm(grads),
                   finite=finite.astype(jnp.float32), loss_scale=state.loss_scale)
    return FinetuneState(state.step + 1, params, opt_state, rng, scale, good), metrics

  return jax.jit(step, donate_argnames="state")


def make_eval(graphdef, objective: Objective, reference_fn=None):
  @jax.jit
  def evaluate(params, rng, frozen, batch):
    model = nnx.merge(graphdef, params, rng, frozen)
    reference = None if reference_fn is None else reference_fn(params, rng, frozen, batch)
    return objective(model, batch, reference)
  return evaluate


def train(model, config, batches, val_batches, objective: Objective, *, workdir,
          reference_fn_factory=None, show_progress=True, stop_at=None) -> FinetuneResult:
  """Fine-tunes `model` (LoRA already applied when config.finetuning_type == "lora").

  `batches.step_batch(step)` gives the A x B x ... arrays of one optimizer step and
  `batches.steps_per_epoch` the epoch length; `val_batches` yields B x ... eval batches.
  """
  dtype = DTYPES[config.compute_type]
  total = config.max_steps or int(math.ceil(config.num_train_epochs * batches.steps_per_epoch))
  tx = make_optimizer(config, total)
  schedule = make_schedule(config, total)  # the same rate the optimizer uses, for the logs
  model.train()
  graphdef, params, rng, frozen_master = split_model(model, config.finetuning_type)
  model.eval()
  eval_graphdef = nnx.split(model, lora.LoRAParam if config.finetuning_type == "lora"
                            else nnx.Param, nnx.RngState, ...)[0]
  frozen = state_lib.cast_floats(frozen_master, dtype)
  trainable, base = lora.count_parameters(model) if config.finetuning_type == "lora" else (
      sum(x.size for x in jax.tree.leaves(params)), 0)
  reference_fn = None if reference_fn_factory is None else reference_fn_factory(graphdef)
  eval_reference_fn = None if reference_fn_factory is None else reference_fn_factory(
      eval_graphdef)
  step_fn = make_step(graphdef, tx, objective, dtype, reference_fn)
  eval_fn = make_eval(eval_graphdef, objective, eval_reference_fn)
  initial_scale = 2.0 ** 15 if config.compute_type == "fp16" else 1.0
  state = FinetuneState(jnp.zeros((), jnp.int32), params, tx.init(params), rng,
                        jnp.asarray(initial_scale, jnp.float32), jnp.zeros((), jnp.int32))

  workdir = Path(workdir)
  checkpoints = checkpoint_lib.Checkpoints(workdir / "checkpoints", keep=2,
                                           best_metric="eval_loss" if val_batches else None)
  if config.resume and checkpoints.latest_step() is not None:
    state = checkpoints.restore(checkpoint_lib.abstract_like(state))
    print(f"finetune: resumed from step {int(state.step)} in {checkpoints.directory}")
  start = int(state.step)
  end = total if stop_at is None else min(stop_at, total)
  run = runs.Run(workdir, config)
  history, evals, stopped, times, tokens = [], [], None, [], []
  bar = runs.progress(total=end, initial=start, desc=config.stage, disable=not show_progress)
  try:
    for step in range(start, end):
      batch = batches.step_batch(step)
      tick = time.perf_counter()
      state, metrics = step_fn(state, frozen, batch)
      metrics = {k: float(v) for k, v in metrics.items()}
      seconds = time.perf_counter() - tick
      if not math.isfinite(metrics["loss"]) and config.compute_type != "fp16":
        stopped = "non-finite"
        print(f"finetune: loss is {metrics['loss']} at step {step + 1}; stopping, the last "
              "checkpoint is intact.")
        break
      if step > start:
        times.append(seconds)
        tokens.append(float(np.sum(batch["lengths"])))  # tokens through the model
      done = step + 1
      row = {"step": done, "epoch": done / batches.steps_per_epoch, **metrics,
             "learning_rate": float(schedule(step))}
      history.append(row)
      bar.update(1)
      bar.set_postfix(loss=f"{metrics['loss']:.3f}",
                      tok_s=f"{(tokens[-1] / times[-1]) if times else 0:.0f}", refresh=False)
      eval_every = config.eval_steps or config.logging_steps
      eval_row = None
      if val_batches and (done % eval_every == 0 or done == end):
        eval_row = evaluate(eval_fn, state, frozen, val_batches)
        evals.append({"step": done, **eval_row})
      if done % config.logging_steps == 0 or done == end or eval_row:
        run.log(done, **{k: v for k, v in row.items() if k != "step"}, **(eval_row or {}))
      if done % config.save_steps == 0 or done == end:
        checkpoints.save(done, state, eval_row)
  finally:
    bar.close()
    checkpoints.wait()
    checkpoints.close()
    run.close()
  if history:
    save_loss_curve(history, evals, workdir / "training_loss.png")
  tuned = nnx.merge(eval_graphdef, state.params, state.rng, frozen_master)
  tokens_per_s = sum(tokens) / sum(times) if times else math.nan
  return FinetuneResult(tuned, history, evals, trainable, base, int(state.step), tokens_per_s,
                        stopped)


def evaluate(eval_fn, state, frozen, val_batches) -> dict:
  sums, count = {}, 0
  for batch in val_batches:
    loss, metrics = eval_fn(state.params, state.rng, frozen, batch)
    for k, v in {"loss": loss, **metrics}.items():
      sums[k] = sums.get(k, 0.0) + float(v)
    count += 1
  return {f"eval_{k}": v / count for k, v in sums.items()}


def smooth(values, weight: float = 0.9):
  """The exponential moving average TensorBoard draws, debiased at the start."""
  out, avg = [], 0.0
  for i, v in enumerate(values, 1):
    avg = weight * avg + (1 - weight) * v
    out.append(avg / (1 - weight ** i))
  return out


def save_loss_curve(history, evals, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  steps = [r["step"] for r in history]
  losses = [r["loss"] for r in history]
  fig, ax = plt.subplots(figsize=(5.5, 3.4))
  ax.plot(steps, losses, lw=0.8, alpha=0.4, label="train (raw)")
  ax.plot(steps, smooth(losses), lw=1.6, label="train (smoothed)")
  if evals:
    ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="eval")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.legend()
  return files.save_figure(fig, path)
