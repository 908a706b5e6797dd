"""LLaMA-Factory's fine-tuning knobs in the terms of the one training loop (research.train):
the schedule and optimizer from the finetune config, what trains (LoRA or full), the number
format (fp32, bf16, fp16 with dynamic loss scaling), and when to log, evaluate and save.

  result = trainer.train(model, config, batches, val_batches, objective)
  model, step = trainer.restore(model, config)     # the newest checkpoint of output_dir
"""

import math
from pathlib import Path

import optax
from flax import nnx

from research import optim
from research.nn import lora
from research.train import loop
from research.train import precision
from research.train import state as state_lib

DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


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
  return state_lib.with_clipping(adamw, config.max_grad_norm)


def trainable_filter(config):
  """LoRA trains the adapters only; full fine-tuning every parameter."""
  return lora.LoRAParam if config.finetuning_type == "lora" else nnx.Param


def total_steps(config, steps_per_epoch: int) -> int:
  return config.max_steps or int(math.ceil(config.num_train_epochs * steps_per_epoch))


def compute_dtype(config, device=None) -> tuple[str, str]:
  """(the dtype the step computes in, a line saying why it is not the one asked, or "").

  bf16/fp16 on a CPU without fast bf16 matmuls compute in float32 (precision.py); fp16 keeps
  its loss scaling then, harmless in float32, so its checkpoints have one shape everywhere.
  """
  return precision.effective_dtype(DTYPES[config.compute_type], device)


def settings(config, total: int, evaluates: bool) -> loop.Settings:
  return loop.Settings(
      steps=total, dtype=compute_dtype(config)[0],
      loss_scaling=config.compute_type == "fp16", seed=config.seed,
      eval_every=(config.eval_steps or config.logging_steps) if evaluates else 0,
      checkpoint_every=config.save_steps, keep=2, log_every=config.logging_steps,
      resume=config.resume, mesh_data=1, mesh_fsdp=1, desc=config.stage)


def train(model, config, batches, val_batches, objective, *, reference=None, trainable=None,
          show_progress=True, stop_at=None) -> loop.TrainResult:
  """Fine-tunes `model` (LoRA already applied when config.finetuning_type == "lora").

  `batches.step_batch(step)` gives the A x B x ... arrays of one optimizer step and
  `batches.steps_per_epoch` the epoch length; `val_batches` yields B x ... eval batches.
  `trainable`: the filter of what trains (default: trainable_filter(config)).
  """
  total = total_steps(config, batches.steps_per_epoch)
  note = compute_dtype(config)[1]
  if note:
    print(f"{config.stage}: {note}")
  return loop.train(model, make_optimizer(config, total), batches,
                    settings(config, total, bool(val_batches)), objective=objective,
                    trainable=trainable or trainable_filter(config), reference=reference,
                    schedule=make_schedule(config, total),
                    eval_batches=val_batches or None, workdir=config.output_dir,
                    snapshot=config, stop_at=stop_at, show_progress=show_progress)


def restore(model, config, step: int | None = None, trainable=None):
  """(model with the trained weights of config.output_dir's newest checkpoint, its step);
  `trainable` as the run had it (rm and ppo: value_head.trainable, with the value head)."""
  return loop.restore(model, make_optimizer(config, 1),
                      Path(config.output_dir) / "checkpoints",
                      trainable=trainable or trainable_filter(config), step=step)
