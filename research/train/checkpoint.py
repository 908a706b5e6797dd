"""Orbax checkpoints: the last N states, and the best one by a validation metric.

Two CheckpointManagers under one folder: `last/` keeps the newest `keep` steps, `best/` keeps
the single step with the lowest metric. Orbax writes to a temporary folder and renames it
when complete, so a crash mid-save never hides the previous good checkpoint.
"""

from pathlib import Path

import jax
import orbax.checkpoint as ocp


class Checkpoints:
  def __init__(self, directory, keep: int = 2, best_metric: str | None = "eval_loss"):
    self.directory = Path(directory).resolve()
    self.best_metric = best_metric
    self.last = ocp.CheckpointManager(
        self.directory / "last",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
    self.best = None
    if best_metric:
      self.best = ocp.CheckpointManager(
          self.directory / "best",
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_mode="min",
              best_fn=lambda metrics: metrics[best_metric]))

  def save(self, step: int, state, metrics: dict | None = None) -> None:
    self.last.save(step, args=ocp.args.StandardSave(state))
    if self.best is not None and metrics and self.best_metric in metrics:
      self.best.save(step, args=ocp.args.StandardSave(state),
                     metrics={k: float(v) for k, v in metrics.items()})

  def latest_step(self) -> int | None:
    return self.last.latest_step()

  def best_step(self) -> int | None:
    return None if self.best is None else self.best.best_step()

  def restore(self, abstract_state, step: int | None = None, best: bool = False):
    """The state at `step` (default: newest, or the best one), laid out like `abstract_state`
    (ShapeDtypeStructs, with shardings where given)."""
    manager = self.best if best else self.last
    step = (manager.best_step() if best else manager.latest_step()) if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {manager.directory}.")
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def wait(self) -> None:
    self.last.wait_until_finished()
    if self.best is not None:
      self.best.wait_until_finished()

  def close(self) -> None:
    self.last.close()
    if self.best is not None:
      self.best.close()


def restore(directory, abstract_state, step: int | None = None, best: bool = False):
  """The state saved under `directory` (newest, `step`, or the best one), laid out like
  `abstract_state`."""
  directory = Path(directory)
  if not (directory / "last").is_dir():
    raise FileNotFoundError(f"no checkpoint in {directory}.")
  checkpoints = Checkpoints(directory, best_metric="eval_loss" if best else None)
  try:
    return checkpoints.restore(abstract_state, step=step, best=best)
  finally:
    checkpoints.close()


def abstract_like(state):
  """ShapeDtypeStructs (with shardings) of a concrete state: the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      state)
