"""What every experiment script shares: a run directory with the config snapshot,
metrics as JSONL and TensorBoard events, progress bars, explicit seeds, config presets and
overrides that stop at a misspelled key."""

import difflib
import json
import random
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from research import files


def seed_everything(seed: int):
  """Seeds Python and NumPy; returns the JAX key every random choice derives from."""
  import jax  # pylint: disable=g-import-not-at-top
  random.seed(seed)
  np.random.seed(seed % 2**32)
  return jax.random.key(seed)


def parse_config_arg(arg: str | None) -> dict[str, Any]:
  """Parses the text after `config.py:` into presets and overrides.

  `quick` -> {"quick": True}; `inits=xavier+kaiming,depths=2+4` -> lists;
  `steps=10` -> 10. Items are separated by commas, list values by '+'.
  """
  out: dict[str, Any] = {}
  for item in filter(None, (arg or "").split(",")):
    if "=" not in item:
      out[item.strip()] = True
      continue
    key, value = (s.strip() for s in item.split("=", 1))
    if not key:
      raise ValueError(f"config argument {item!r}: expected key=value.")
    values = [_scalar(v) for v in value.split("+")]
    out[key] = values if "+" in value else values[0]
  return out



class ConfigKeyError(LookupError):
  """An override names a field the config does not have. A LookupError, not a ValueError, so
  that ml_collections' config loader passes it on as it is instead of adding a traceback."""


def field_paths(config, prefix: str = "") -> list[str]:
  """Every field of a ConfigDict, nested ones as dotted paths (model.width)."""
  out = []
  for key, value in config.items():
    out.append(prefix + key)
    if hasattr(value, "items"):
      out += field_paths(value, f"{prefix}{key}.")
  return out


def check_field(config, path: str, what: str, presets: Iterable[str] = ()) -> None:
  """ConfigKeyError, one sentence naming `path` and its nearest field, unless `config` has it."""
  node = config
  for part in path.split("."):
    if not hasattr(node, "items") or part not in node:
      valid = field_paths(config) + list(presets)
      nearest = difflib.get_close_matches(path, valid, n=1, cutoff=0.0)
      raise ConfigKeyError(f"{what}: the config has no field {path!r}; the nearest valid one "
                           f"is {nearest[0]!r}." if nearest else f"{what}: the config is empty.")
    node = node[part]


def override(config, options: dict[str, Any], presets: Iterable[str] = ("quick",)):
  """Locks `config`, then sets each `key=value` of `options` (dots reach nested fields).

  A key the config lacks stops with ConfigKeyError naming it and the nearest field (or preset)
  instead of being added; the locked config also refuses new keys set later, by a
  `--config.key=value` flag or by code.
  """
  config.lock()
  for path, value in options.items():
    check_field(config, path, f"config override {path}={value}", presets)
    *parents, leaf = path.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config

def _scalar(text: str):
  for cast in (int, float):
    try:
      return cast(text)
    except ValueError:
      pass
  return {"true": True, "false": False}.get(text.lower(), text)


class Run:
  """A run directory: config.json, metrics.jsonl and TensorBoard events.

  with Run("runs/x", config) as run:
    run.log(step, loss=...)

  `continues_from`: the step a training run starts after (its checkpoint's; 0 when fresh). The
  rows an interrupted run logged past it are dropped, since this run logs those steps again, as
  TensorBoard's purge_step drops their events; None keeps every row (a log of claims).
  """

  def __init__(self, workdir, config=None, tensorboard: bool = True,
               continues_from: int | None = None):
    self.dir = Path(workdir)
    self.dir.mkdir(parents=True, exist_ok=True)
    self.config = config
    if config is not None:
      snapshot = config.to_dict() if hasattr(config, "to_dict") else dict(config)
      files.write_json(self.dir / "config.json", snapshot)
    if continues_from is not None:
      _drop_rows_after(self.dir / "metrics.jsonl", continues_from)
    self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
    self._tb = None
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      purge = None if continues_from is None else continues_from + 1
      self._tb = SummaryWriter(logdir=str(self.dir / "tb"), purge_step=purge)
    self._start = time.time()

  def log(self, step: int, **metrics) -> None:
    """Appends one JSON line and one TensorBoard scalar per metric."""
    row = {"step": int(step), "time_s": round(time.time() - self._start, 4)}
    row.update({k: _plain(v) for k, v in metrics.items()})
    self._metrics.write(json.dumps(row) + "\n")
    self._metrics.flush()
    if self._tb is not None:
      for name, value in row.items():
        if name not in ("step", "time_s") and isinstance(value, (int, float)):
          self._tb.add_scalar(name, value, int(step))

  def path(self, name: str) -> Path:
    return self.dir / name

  def close(self) -> None:
    self._metrics.close()
    if self._tb is not None:
      self._tb.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _drop_rows_after(path: Path, step: int) -> None:
  """Rewrites a metrics log without its rows past `step` (and a half-written last line, which a
  killed run can leave); untouched when it has none."""
  if not path.is_file():
    return
  lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step and line.endswith("\n"):
        kept.append(line)
    except (json.JSONDecodeError, KeyError, TypeError):
      pass  # the torn line of a killed write
  if len(kept) < len(lines):
    files.write_text(path, "".join(kept))


def _plain(value):
  if hasattr(value, "item") and getattr(value, "size", 1) == 1:
    return value.item()
  if isinstance(value, (np.ndarray, list, tuple)):
    return np.asarray(value).tolist()
  return value


def read_metrics(workdir) -> list[dict]:
  path = Path(workdir) / "metrics.jsonl"
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def progress(iterable: Iterable | None = None, total: int | None = None,
             desc: str | None = None, unit: str = "step", **kwargs):
  """A tqdm bar (rate shown as steps/s); pass `unit_scale` for tokens/s counters."""
  from tqdm.auto import tqdm  # pylint: disable=g-import-not-at-top
  kwargs.setdefault("mininterval", 0.5)
  kwargs.setdefault("dynamic_ncols", True)
  return tqdm(iterable, total=total, desc=desc, unit=unit, **kwargs)
