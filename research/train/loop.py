"""The training loop for every objective: batches, the one jitted step, evaluation, metrics,
checkpoints, resume and the NaN stop.

  result = loop.train(model, tx, batches, loop.Settings(steps=1000, eval_every=100),
                      objective=step.lm_objective, eval_batches=val, workdir="runs/x")
  model, step = loop.restore(model, tx, "runs/x/checkpoints")

`batches.step_batch(step)` is the dict of A x B x ... arrays of one optimizer step (any step can
be asked for, so a resumed run sees the same data). On-policy sources (PPO, GRPO) also have
`batches.collect(step, current_model)`, called before each step with a function returning the
model as trained so far (eval mode; use it within the call, its arrays are donated by the
step), and `batches.metrics(step)`, floats added to that step's row; `eval_batches` is an iterable of dicts of
B x ... arrays. A run whose workdir holds checkpoints resumes from the newest one; a NaN or Inf
loss stops the run before anything is saved, so the last good checkpoint stays intact. One set
of metric names: loss, eval_loss, learning_rate, grad_norm, tokens_per_s (real tokens: the
batch's "lengths" when it has them), plus the objective's own (eval_ prefixed when evaluated).
"""

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from research import files
from research import runs
from research.train import checkpoint as checkpoint_lib
from research.train import flops as flops_lib
from research.train import mesh as mesh_lib
from research.train import state as state_lib
from research.train import step as step_lib

FP16_START_SCALE = 2.0 ** 15
BAR_WINDOW = 50  # steps the progress bar's steady figures are the median of


@dataclasses.dataclass(frozen=True)
class Settings:
  """When things happen in a run, and in which number format."""
  steps: int                    # optimizer steps of the whole run
  dtype: str = "float32"        # compute dtype: float32, bfloat16 or float16
  loss_scaling: bool = False    # fp16's dynamic loss scale (starts at 2**15)
  seed: int = 0                 # dropout keys are fold_in(fold_in(seed, step), micro-batch)
  dropout: bool = False         # hand the objective dropout keys
  eval_every: int = 0           # evaluate every N steps and at the last; 0: never
  checkpoint_every: int = 0     # save every N steps and at the last; 0: no checkpoints
  keep: int = 2                 # newest checkpoints kept, besides the best by eval_loss
  log_every: int = 1            # a metrics.jsonl row every N steps (and at evals, the last)
  resume: bool = True           # continue from the newest checkpoint in workdir; False: the
                                # old checkpoints there are deleted and the run starts afresh
  mesh_data: int | None = None  # data-parallel devices; None: all that fsdp leaves
  mesh_fsdp: int = 1            # devices each large parameter is split over
  desc: str = "train"           # the progress bar's label


@dataclasses.dataclass
class TrainResult:
  graphdef: Any                    # the model's eval-mode structure
  state: state_lib.TrainState
  frozen: Any                      # the frozen part, float32 (empty when everything trains)
  history: list[dict]              # one row per step: step, loss, grad_norm, tokens_per_s, ...
  evals: list[dict]                # step, eval_loss, ...
  stopped: str | None = None       # "non-finite" when a NaN/Inf loss stopped the run
  start_step: int = 0
  ms_per_iter: float = math.nan    # median over the steps that compiled nothing
  tokens_per_s: float = math.nan   # median step's real tokens per second, same steps
  first_step_s: float = math.nan   # the run's first step: compiling its program, then running it
  compiled_steps: int = 0          # steps that met a new batch shape (each compiles a program)
  mfu: float = math.nan
  peak_flops: float = math.nan     # the measured matmul FLOP/s the MFU divides by
  peak_machine: str = ""           # what that peak was measured on (flops.machine_peak)
  trainable_parameters: int = 0
  frozen_parameters: int = 0

  @property
  def model(self) -> nnx.Module:
    """The trained model in eval mode (LoRA unmerged)."""
    return state_lib.merge(self.graphdef, self.state.params, self.state.rng, self.frozen)

  @property
  def steps(self) -> int:
    return int(self.state.step)


def train(model, tx, batches, settings: Settings, *, objective=step_lib.lm_objective,
          trainable=nnx.Param, reference=None, schedule=None, eval_batches=None,
          workdir=None, snapshot=None, stop_at: int | None = None, show_progress=True,
          flops_per_token: float | None = None, peak_flops: float | None = None) -> TrainResult:
  """Trains to `settings.steps` (or stops early at `stop_at`, as a killed run would).

  `model`: an nnx.Module, or a function building one (built inside jit, straight into its
  shardings, and not at all when resuming). `trainable`: the filter of what trains.
  `schedule`: the optimizer's learning rate, for the logs. `snapshot`: what config.json holds.
  """
  mesh = mesh_lib.make_mesh(settings.mesh_data, settings.mesh_fsdp)
  loss_scale = FP16_START_SCALE if settings.loss_scaling else 1.0
  checkpoints = None
  if workdir is not None and settings.checkpoint_every:
    if not settings.resume:
      checkpoint_lib.discard(Path(workdir) / "checkpoints", log=print if show_progress else None)
    best = "eval_loss" if eval_batches is not None and settings.eval_every else None
    checkpoints = checkpoint_lib.Checkpoints(Path(workdir) / "checkpoints", keep=settings.keep,
                                             best_metric=best)
  resuming = (settings.resume and checkpoints is not None
              and checkpoints.latest_step() is not None)
  parts, state, frozen_master = _initial_state(model, tx, trainable, mesh, loss_scale,
                                               not resuming)
  state_sharding = mesh_lib.tree_sharding(mesh, state)
  if resuming:
    state = checkpoints.restore(_target(state, state_sharding))
    if show_progress:
      print(f"{settings.desc}: resumed from step {int(state.step)} in {checkpoints.directory}")
  frozen = state_lib.cast_floats(frozen_master, settings.dtype)  # the compute copy, cast once
  start = int(state.step)
  end = settings.steps if stop_at is None else min(stop_at, settings.steps)

  train_step = step_lib.make_train_step(
      parts.graphdef, tx, objective, dtype=settings.dtype, reference=reference,
      loss_scaling=settings.loss_scaling, seed=settings.seed, dropout=settings.dropout,
      schedule=schedule, state_sharding=state_sharding)
  eval_step = step_lib.make_eval_step(parts.eval_graphdef, objective, dtype=settings.dtype,
                                      reference=reference)
  peak_machine = ""
  if flops_per_token is not None and peak_flops is None:
    peak = flops_lib.machine_peak()
    peak_flops, peak_machine = peak.flops, peak.machine
  size = lambda tree: sum(x.size for x in jax.tree.leaves(tree))
  result = TrainResult(parts.eval_graphdef, state, frozen_master, [], [], start_step=start,
                       peak_flops=math.nan if peak_flops is None else peak_flops,
                       peak_machine=peak_machine,
                       trainable_parameters=size(parts.params),
                       frozen_parameters=size(frozen_master))
  run = runs.Run(workdir, snapshot, continues_from=start) if workdir is not None else None
  # tqdm's own rate and time left would average the compiling steps in for minutes; the
  # postfix shows the first step apart and the steady rate of the steps that compiled nothing
  bar = runs.progress(total=end, initial=start, desc=settings.desc, disable=not show_progress,
                      bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
  times, rates, shapes = [], [], set()
  try:
    for step in range(start, end):
      if hasattr(batches, "collect"):  # rollouts by the policy as it is now
        batches.collect(step, lambda: state_lib.merge(parts.eval_graphdef, state.params,
                                                      state.rng, frozen_master))
      batch = batches.step_batch(step)
      extra = batches.metrics(step) if hasattr(batches, "metrics") else {}
      tokens = real_tokens(batch)
      shape = tuple(sorted((k, np.shape(v)) for k, v in batch.items()))
      compiles = shape not in shapes  # a new shape: the step compiles before it runs
      shapes.add(shape)
      placed = place(batch, mesh, micro_batches=True)
      tick = time.perf_counter()
      state, metrics = train_step(state, placed, frozen)
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}  # waits for the step
      seconds = time.perf_counter() - tick
      done = step + 1
      if not math.isfinite(metrics["loss"]) and not settings.loss_scaling:
        result.stopped = "non-finite"  # fp16 skips such a step instead, and lowers its scale
        print(f"{settings.desc}: loss is {metrics['loss']} at step {done}; stopping, "
              "checkpoints untouched.")
        if run is not None:
          run.log(done, loss=metrics["loss"], stopped=1.0)
        break
      row = {"step": done, **metrics, **extra, "tokens_per_s": tokens / seconds,
             "seconds": seconds}
      if hasattr(batches, "steps_per_epoch"):
        row["epoch"] = done / batches.steps_per_epoch
      if flops_per_token is not None:
        row["mfu"] = flops_lib.mfu(flops_per_token, row["tokens_per_s"], peak_flops)
      if step == start:
        result.first_step_s = seconds
      if compiles:
        result.compiled_steps += 1
      else:
        times.append(seconds)
        rates.append(row["tokens_per_s"])
      result.history.append(row)
      # the postfix first: update() draws the bar, so this step's figures show now, not a step
      # late
      bar.set_postfix(_postfix(row, result.first_step_s, times, rates, end - done,
                               flops_per_token, peak_flops), refresh=False)
      bar.update(1)
      eval_row = None
      if eval_batches is not None and settings.eval_every and (
          done % settings.eval_every == 0 or done == end):
        eval_row = evaluate(eval_step, state, frozen, eval_batches, mesh)
        result.evals.append({"step": done, **eval_row})
        if show_progress:
          bar.write(f"step {done}: loss {row['loss']:.4f}, eval_loss {eval_row['eval_loss']:.4f}")
      if run is not None and (done % settings.log_every == 0 or done == end or eval_row):
        run.log(done, **{k: v for k, v in row.items() if k != "step"}, **(eval_row or {}))
      if checkpoints is not None and (done % settings.checkpoint_every == 0 or done == end):
        checkpoints.save(done, state, eval_row)
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
    result.tokens_per_s = statistics.median(rates)
    if flops_per_token is not None:
      result.mfu = flops_lib.mfu(flops_per_token, result.tokens_per_s, peak_flops)
  if workdir is not None and result.history:
    earlier = [r for r in runs.read_metrics(workdir) if r["step"] <= start]  # before a resume
    save_loss_curve([r for r in earlier if "loss" in r] + result.history,
                    [r for r in earlier if "eval_loss" in r] + result.evals,
                    Path(workdir) / "training_loss.png")
  return result


def _postfix(row, first_step_s, times, rates, steps_left, flops_per_token, peak_flops) -> dict:
  """The bar's figures: loss, the first step's seconds, then (once a step has run without
  compiling) the steady s/step, tokens/s, MFU and time left, medians over the last
  BAR_WINDOW such steps; 3 significant digits, so a slow step's 0.4 tokens/s does not read
  as 0."""
  shown = {"loss": f"{row['loss']:.3f}", "first_step": f"{first_step_s:.3g}s"}
  if not times:
    return shown
  seconds = statistics.median(times[-BAR_WINDOW:])
  rate = statistics.median(rates[-BAR_WINDOW:])
  shown.update(s_step=f"{seconds:.3g}", tok_s=f"{rate:.3g}")
  if flops_per_token is not None:
    shown["mfu"] = f"{100 * flops_lib.mfu(flops_per_token, rate, peak_flops):.1f}%"
  shown["left"] = _clock(seconds * steps_left)
  return shown


def _clock(seconds: float) -> str:
  """mm:ss, or h:mm:ss from an hour on (tqdm's form)."""
  minutes, secs = divmod(int(round(seconds)), 60)
  if minutes >= 60:
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
  return f"{minutes:02d}:{secs:02d}"


def _initial_state(model, tx, trainable, mesh, loss_scale, fresh: bool):
  """(Parts, TrainState, frozen) on the mesh; with fresh=False the state is only abstract
  (a checkpoint will fill it)."""
  if isinstance(model, nnx.Module):
    parts = state_lib.split(model, trainable)
    frozen = mesh_lib.shard(parts.frozen, mesh_lib.tree_sharding(mesh, parts.frozen))
    if not fresh:
      return parts, jax.eval_shape(lambda: state_lib.init(parts.params, parts.rng, tx,
                                                          loss_scale)), frozen
    params = mesh_lib.shard(parts.params, mesh_lib.tree_sharding(mesh, parts.params))
    rng = mesh_lib.shard(parts.rng, mesh_lib.tree_sharding(mesh, parts.rng))
    opt_state = jax.jit(tx.init, out_shardings=mesh_lib.tree_sharding(
        mesh, jax.eval_shape(tx.init, params)))(params)  # the moments; params are not copied
    return parts, state_lib.TrainState(
        jax.device_put(np.int32(0), mesh_lib.replicated(mesh)), params, opt_state, rng,
        jax.device_put(np.float32(loss_scale), mesh_lib.replicated(mesh)),
        jax.device_put(np.int32(0), mesh_lib.replicated(mesh))), frozen
  parts, abstract = state_lib.abstract_state(tx, model, trainable)
  state_sharding = mesh_lib.tree_sharding(mesh, abstract)
  frozen_sharding = mesh_lib.tree_sharding(mesh, parts.frozen)

  def build():
    built = state_lib.split(model(), trainable)
    return state_lib.init(built.params, built.rng, tx, loss_scale), built.frozen

  if not fresh:
    frozen = jax.jit(lambda: build()[1], out_shardings=frozen_sharding)()
    return parts, abstract, frozen
  state, frozen = jax.jit(build, out_shardings=(state_sharding, frozen_sharding))()
  return parts, state, frozen


def _target(state, sharding):
  """The restore target: ShapeDtypeStructs laid out like `sharding`."""
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state,
                      sharding)


def restore(model: nnx.Module, tx, directory, *, trainable=nnx.Param, step: int | None = None,
            best: bool = False) -> tuple[nnx.Module, int]:
  """(the model with a saved run's trained parameters and RNG streams, in eval mode; the
  checkpoint's step). `model` is built as the run built it (LoRA applied); `tx` is the run's
  optimizer, whose moments shape the checkpoint. Newest checkpoint, unless `step` or `best`."""
  parts = state_lib.split(model, trainable)
  abstract = jax.eval_shape(lambda: state_lib.init(parts.params, parts.rng, tx))
  saved = checkpoint_lib.restore(directory, abstract, step=step, best=best)
  return (state_lib.merge(parts.eval_graphdef, saved.params, saved.rng, parts.frozen),
          int(saved.step))


def real_tokens(batch: dict) -> int:
  """Tokens through the model in one step: the rows' lengths (padding excluded) when the batch
  has them, else every input position."""
  if "lengths" in batch:
    return int(np.sum(batch["lengths"]))
  return int(np.size(batch["inputs"]))


def place(batch: dict, mesh, micro_batches: bool):
  """The batch on the mesh, B split over data and fsdp (leaves A x B x ... or B x ...)."""
  return jax.tree.map(
      lambda x: _global_batch(x, mesh_lib.batch_sharding(mesh, np.ndim(x), micro_batches)),
      batch)


def evaluate(eval_step, state, frozen, batches, mesh=None) -> dict:
  """eval_loss and the objective's metrics (eval_ prefixed), each the mean over `batches`."""
  sums, count = {}, 0
  for batch in batches:
    if mesh is not None:
      batch = place(batch, mesh, micro_batches=False)
    loss, metrics = eval_step(state.params, state.rng, frozen, batch)
    for name, value in {"loss": loss, **metrics}.items():
      sums[name] = sums.get(name, 0.0) + float(value)
    count += 1
  return {f"eval_{name}": total / count for name, total in sums.items()}


def _global_batch(local, sharding):
  """This host's rows of the batch as one global array (several hosts), or placed as is."""
  if jax.process_count() > 1:
    return jax.make_array_from_process_local_data(sharding, local)
  return jax.device_put(local, sharding)


def smooth(values, weight: float = 0.9):
  """The exponential moving average TensorBoard draws, debiased at the start."""
  out, avg = [], 0.0
  for i, v in enumerate(values, 1):
    avg = weight * avg + (1 - weight) * v
    out.append(avg / (1 - weight ** i))
  return out


def save_loss_curve(history, evals, path) -> Path:
  """The loss (raw, smoothed, eval) over steps; on-policy runs (PPO, GRPO) add their mean
  reward in a second panel."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  steps = [r["step"] for r in history]
  losses = [r["loss"] for r in history]
  rewarded = [r for r in history if "reward/mean" in r]
  fig, axes = plt.subplots(1, 2 if rewarded else 1, figsize=(9 if rewarded else 5.5, 3.4),
                           squeeze=False)
  ax = axes[0, 0]
  ax.plot(steps, losses, lw=0.8, alpha=0.4, label="train (raw)")
  ax.plot(steps, smooth(losses), lw=1.6, label="train (smoothed)")
  if evals:
    ax.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="eval")
  ax.set_xlabel("step")
  ax.set_ylabel("loss")
  ax.legend()
  if rewarded:
    ax = axes[0, 1]
    ax.plot([r["step"] for r in rewarded], [r["reward/mean"] for r in rewarded], "o-",
            label="mean reward of the rollouts")
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.legend()
  fig.tight_layout()
  return files.save_figure(fig, path)
