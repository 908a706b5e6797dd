"""Orbax checkpoints: the last N states, and the best one by a validation metric.

Two CheckpointManagers under one folder: `last/` keeps the newest `keep` steps, `best/` keeps
the single step with the lowest metric. Orbax writes to a temporary folder and renames it
when complete, so a crash mid-save never hides the previous good checkpoint.
"""

import contextlib
import shutil
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from etils import epath

_ADVICE = "start the run in a new folder, or delete that one"


def discard(directory, log=print) -> None:
  """Deletes a checkpoint folder an earlier run left, for a run told to start afresh over it
  (LLaMA-Factory's overwrite_output_dir) rather than resume it."""
  directory = Path(directory)
  if directory.is_dir() and any(directory.iterdir()):
    shutil.rmtree(directory)
    if log:
      log(f"starting afresh: deleted the earlier run's checkpoints in {directory}")


class Checkpoints:
  def __init__(self, directory, keep: int = 2, best_metric: str | None = "eval_loss"):
    self.directory = Path(directory).resolve()
    self.best_metric = best_metric
    self.last = ocp.CheckpointManager(
        self.directory / "last",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))
    self.best = None
    self._saving = None  # the step of the save in flight, for its error message
    if best_metric:
      self.best = ocp.CheckpointManager(
          self.directory / "best",
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_mode="min",
              best_fn=lambda metrics: metrics[best_metric]))

  def save(self, step: int, state, metrics: dict | None = None) -> None:
    with self._naming_a_failed_save(step):
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
    (ShapeDtypeStructs, with shardings where given). A checkpoint of another model (other
    shapes, other parameters) stops with one sentence naming its folder and the first
    difference."""
    manager = self.best if best else self.last
    step = (manager.best_step() if best else manager.latest_step()) if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {manager.directory}.")
    check_fits(Path(manager.directory) / str(step), abstract_state)
    return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))

  def wait(self) -> None:
    with self._naming_a_failed_save(None):
      self.last.wait_until_finished()
      if self.best is not None:
        self.best.wait_until_finished()

  @contextlib.contextmanager
  def _naming_a_failed_save(self, step):
    """A save that fails on a full disk (or any OSError) says which folder and step, and which
    complete checkpoint is still there (orbax renames a step's folder only once it is whole).
    Saves are asynchronous: the error of step N's save may come out of wait()."""
    if step is not None:
      self._saving = step
    try:
      yield
    except OSError as e:
      folder = Path(self.last.directory)
      whole = [int(p.name) for p in folder.iterdir() if p.name.isdigit()]
      kept = (f"the checkpoint of step {max(whole)} is intact" if whole
              else "no earlier checkpoint is there")
      reason = (e.strerror or str(e)).rstrip(".")
      raise OSError(e.errno, f"{reason} while saving step {self._saving}; {kept}",
                    str(folder)) from e

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


def _leaf_shapes(tree) -> dict[str, tuple]:
  """{'params.blocks.0.attn.query.kernel': shape} for every array of a pytree, named the
  same way for a state (NamedTuple fields, dicts, tuples) and for orbax's metadata of it."""
  def key_name(key):
    for attribute in ("key", "name", "idx"):
      if hasattr(key, attribute):
        return str(getattr(key, attribute))
    return str(key)
  def shape(leaf):  # a PRNG key is saved as its raw data: shape () becomes (2,)
    if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
      return tuple(jax.eval_shape(jax.random.key_data, leaf).shape)
    return tuple(leaf.shape)
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {".".join(key_name(k) for k in path): shape(leaf) for path, leaf in leaves
          if hasattr(leaf, "shape")}


def check_fits(step_dir: Path, abstract_state) -> None:
  """Stops with one sentence when the checkpoint in `step_dir` holds other arrays (names or
  shapes) than `abstract_state`: a folder left by another model."""
  damaged = (f"{step_dir}: the checkpoint's metadata cannot be read, so it is incomplete or "
             "damaged; delete that folder to resume from the one before")
  handler = ocp.StandardCheckpointHandler()
  try:
    saved = handler.metadata(epath.Path(step_dir / "default"))
  except Exception as e:  # orbax's errors for a damaged folder vary: name the folder
    raise ValueError(f"{damaged} ({str(e).rstrip('.')}).".replace("\n", " ")) from e
  finally:
    handler.close()
  if saved is None:
    raise ValueError(f"{damaged}.")
  saved = _leaf_shapes(saved.tree)
  wanted = _leaf_shapes(abstract_state)
  intro = f"{step_dir} holds a checkpoint of another model: "
  for name, shape in wanted.items():
    if name not in saved:
      raise ValueError(f"{intro}it has no {name}, which this run has; {_ADVICE}.")
    if saved[name] != shape:
      raise ValueError(f"{intro}{name} is {saved[name]} there and {shape} in this run; "
                       f"{_ADVICE}.")
  extra = sorted(set(saved) - set(wanted))
  if extra:
    raise ValueError(f"{intro}its {extra[0]} has no place in this run; {_ADVICE}.")


def abstract_like(state):
  """ShapeDtypeStructs (with shardings) of a concrete state: the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
      state)
