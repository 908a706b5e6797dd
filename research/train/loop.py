"""The training loop: batches, the jitted step, evaluation, metrics, checkpoints, resume.

  result = loop.train(model_config, config, train_windows, val_windows, workdir="runs/lm")

`config` (an ml_collections.ConfigDict or any object with these attributes): seed, steps, lr,
min_lr, warmup_steps, b1, b2, weight_decay, max_grad_norm, grad_accum, dtype, eval_every,
eval_batches, checkpoint_every, keep, log_every, sampler ("epoch" or "random"), mesh_data,
mesh_fsdp. A run whose workdir holds checkpoints resumes from the newest one; a NaN or Inf loss
stops the run before anything is saved, so the last good checkpoint stays intact.
"""

import dataclasses
import math
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from research import files
from research import runs
from research.nn import count
from research.nn import transformer
from research.train import checkpoint as checkpoint_lib
from research.train import flops as flops_lib
from research.nn import fused
from research.train import mesh as mesh_lib
from research.train import state as state_lib
from research.train import step as step_lib


@dataclasses.dataclass
class TrainResult:
  graphdef: object
  state: state_lib.TrainState
  history: list[dict]              # one row per step: step, loss, grad_norm, seconds
  evals: list[dict]                # step, val_loss
  stopped: str | None = None       # "non-finite" when a NaN/Inf loss stopped the run
  start_step: int = 0
  ms_per_iter: float = math.nan    # median over the steps of this run, compile excluded
  tokens_per_s: float = math.nan
  mfu: float = math.nan
  peak_flops: float = math.nan  # the measured matmul FLOP/s the MFU divides by

  @property
  def model(self):
    return nnx.merge(self.graphdef, self.state.params)


def micro_batches(windows, step: int, accum: int, sampler: str = "epoch"):
  """A x B x L inputs and targets for one optimizer step (A micro-batches)."""
  fetch = windows.random_batch if sampler == "random" else windows.batch
  pairs = [fetch(step * accum + a) for a in range(accum)]
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def evaluate(eval_step, params, windows, num_batches: int, sampler: str = "epoch",
             sharding=None) -> float:
  """Mean loss over a fixed set of `num_batches` validation batches (B x L, B split over the
  mesh when `sharding` is given)."""
  fetch = windows.random_batch if sampler == "random" else windows.batch
  losses = []
  for i in range(num_batches):
    inputs, targets = fetch(i)
    if sharding is not None:
      inputs, targets = (_global_batch(x, sharding) for x in (inputs, targets))
    losses.append(float(eval_step(params, inputs, targets)))
  return float(np.mean(losses))


def train(model_config, config, train_windows, val_windows=None, workdir=None,
          stop_at: int | None = None, peak_flops: float | None = None, show_progress=True,
          model=None) -> TrainResult:
  """Trains to `config.steps` (or stops early at `stop_at`, as a killed run would)."""
  fused.retain_freed_memory()  # the step's scratch space: no page faults on every call
  mesh = mesh_lib.make_mesh(config.get("mesh_data", None), config.get("mesh_fsdp", 1))
  tx = state_lib.make_optimizer(config)
  seed = config.seed
  sampler = config.get("sampler", "epoch")
  accum = config.get("grad_accum", 1)
  dtype = config.get("dtype", "float32")
  model_fn = lambda: transformer.Transformer(model_config, rngs=nnx.Rngs(seed))
  graphdef, abstract = state_lib.abstract_state(tx, model_fn if model is None else lambda: model)
  state_sharding = mesh_lib.tree_sharding(mesh, abstract)
  batch_sharding = mesh_lib.batch_sharding(mesh)

  checkpoints = None
  if workdir is not None and config.get("checkpoint_every", 0):
    checkpoints = checkpoint_lib.Checkpoints(Path(workdir) / "checkpoints",
                                             keep=config.get("keep", 2))
  if checkpoints is not None and checkpoints.latest_step() is not None:
    target = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                          abstract, state_sharding)
    state = checkpoints.restore(target)
  else:
    init = jax.jit(lambda: state_lib.create(model_fn() if model is None else model, tx)[1],
                   out_shardings=state_sharding)
    state = init()
  start = int(state.step)
  end = config.steps if stop_at is None else min(stop_at, config.steps)

  train_step = step_lib.make_train_step(graphdef, tx, dtype, seed, model_config.dropout > 0,
                                        state_sharding)
  eval_step = step_lib.make_eval_step(graphdef, dtype)
  tokens_per_step = accum * train_windows.batch_size * train_windows.context_length
  flops_per_token = count.flops_per_token(model_config, train_windows.context_length)
  if peak_flops is None:
    peak_flops = flops_lib.measure_matmul_peak()

  run = runs.Run(workdir, _snapshot(model_config, config)) if workdir is not None else None
  result = TrainResult(graphdef, state, [], [], start_step=start, peak_flops=peak_flops)
  bar = runs.progress(total=end, initial=start, desc="train", disable=not show_progress)
  times = []
  try:
    for step in range(start, end):
      inputs, targets = micro_batches(train_windows, step, accum, sampler)
      inputs, targets = (_global_batch(x, batch_sharding) for x in (inputs, targets))
      tick = time.perf_counter()
      state, metrics = train_step(state, inputs, targets)
      loss = float(metrics["loss"])  # waits for the step: the timing covers all of it
      seconds = time.perf_counter() - tick
      if not math.isfinite(loss):
        result.stopped = "non-finite"
        print(f"train: loss is {loss} at step {step + 1}; stopping, checkpoints untouched.")
        if run is not None:
          run.log(step + 1, loss=loss, stopped=1.0)
        break
      if step > start:
        times.append(seconds)  # the first step of a run compiles
      row = {"step": step + 1, "loss": loss, "grad_norm": float(metrics["grad_norm"]),
             "seconds": seconds}
      result.history.append(row)
      tokens_per_s = tokens_per_step / seconds
      utilisation = flops_lib.mfu(flops_per_token, tokens_per_s, peak_flops)
      bar.update(1)
      bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens_per_s:.0f}",
                      mfu=f"{100 * utilisation:.1f}%", refresh=False)
      done = step + 1
      eval_metrics = None
      if val_windows is not None and config.get("eval_every", 0) and (
          done % config.eval_every == 0 or done == config.steps):
        val_loss = evaluate(eval_step, state.params, val_windows, config.eval_batches, sampler,
                            mesh_lib.batch_sharding(mesh, ndim=2))
        eval_metrics = {"val_loss": val_loss}
        result.evals.append({"step": done, "val_loss": val_loss})
        bar.write(f"step {done}: train loss {loss:.4f}, val loss {val_loss:.4f}")
      if run is not None and (done % config.get("log_every", 1) == 0 or eval_metrics):
        run.log(done, loss=loss, grad_norm=row["grad_norm"], tokens_per_s=tokens_per_s,
                mfu=utilisation, **(eval_metrics or {}))
      if checkpoints is not None and (done % config.checkpoint_every == 0 or done == end):
        checkpoints.save(done, state, eval_metrics)
  finally:
    bar.close()
    if checkpoints is not None:
      checkpoints.wait()
      checkpoints.close()
    if run is not None:
      run.close()
  result.state = state
  if times:
    result.ms_per_iter = 1000 * statistics.median(times)
    result.tokens_per_s = tokens_per_step / statistics.median(times)
    result.mfu = flops_lib.mfu(flops_per_token, result.tokens_per_s, peak_flops)
  if workdir is not None and result.history:
    save_loss_curve(result, Path(workdir) / "loss.png")
  return result


def _global_batch(local, sharding):
  """This host's rows of the batch as one global array (several hosts), or placed as is."""
  if jax.process_count() > 1:
    return jax.make_array_from_process_local_data(sharding, local)
  return jax.device_put(local, sharding)


def save_loss_curve(result: TrainResult, path) -> Path:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.5, 3.4))
  ax.plot([r["step"] for r in result.history], [r["loss"] for r in result.history],
          lw=0.8, label="train")
  if result.evals:
    ax.plot([e["step"] for e in result.evals], [e["val_loss"] for e in result.evals], "o-",
            label="validation")
  ax.set_xlabel("step")
  ax.set_ylabel("cross-entropy (nats/token)")
  ax.legend()
  return files.save_figure(fig, path)


def _snapshot(model_config, config) -> dict:
  train = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return {"model": dataclasses.asdict(model_config), "train": train}
