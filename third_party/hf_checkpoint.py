"""HF model directories: config.json plus model.safetensors, or shards listed in
model.safetensors.index.json. Read to, and written from, dicts of numpy arrays."""

import json
import os
from pathlib import Path

import ml_dtypes  # noqa: F401  (registers bfloat16 with numpy, so bf16 tensors load)
import numpy as np
from safetensors import SafetensorError
from safetensors import safe_open
from safetensors.numpy import save_file

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def read_json_object(path: Path) -> dict:
  """A JSON file that must hold an object; else one sentence naming the file and line."""
  try:
    obj = json.loads(path.read_text(encoding="utf-8"))
  except json.JSONDecodeError as e:
    raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg}).") from e
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from e
  if not isinstance(obj, dict):
    kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(
        type(obj), "number")
    raise ValueError(f"{path}: expected a JSON object {{...}}, found a {kind}.")
  return obj


def read_config(directory) -> dict:
  path = Path(directory) / "config.json"
  if not path.is_file():
    raise FileNotFoundError(f"{path}: no config.json in the model directory.")
  return read_json_object(path)


def tensor_files(directory) -> list[Path]:
  directory = Path(directory)
  if (directory / INDEX).is_file():
    weight_map = read_json_object(directory / INDEX).get("weight_map")
    names = sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []
    if not names:
      raise ValueError(f"{directory / INDEX}: its weight_map lists no files.")
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
      raise FileNotFoundError(f"{directory / INDEX} lists {missing[0]}, which is not there.")
    return [directory / n for n in names]
  if (directory / SINGLE).is_file():
    return [directory / SINGLE]
  raise FileNotFoundError(f"{directory}: no {SINGLE} or {INDEX}.")


def load_tensors(directory) -> dict[str, np.ndarray]:
  tensors = {}
  for path in tensor_files(directory):
    try:
      with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
          tensors[name] = f.get_tensor(name)
    except SafetensorError as e:  # a truncated file, a header that is not JSON, ...
      raise ValueError(f"{path}: not a readable safetensors file ({e}).") from e
  return tensors


def _write_then_rename(path: Path, write_to) -> None:
  """Calls write_to(temporary path) and renames the result to `path`, so a crash mid-write
  leaves the old file (or none), never half a file. Kept here so that third_party depends on
  nothing of ours."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    write_to(tmp)
    os.replace(tmp, path)  # atomic on POSIX: both names are in one directory
  finally:
    tmp.unlink(missing_ok=True)


def _write_json(path: Path, obj) -> None:
  text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
  _write_then_rename(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write(directory, tensors: dict[str, np.ndarray], config: dict,
          max_shard_bytes: int = 2 * 1024**3) -> Path:
  """Writes config.json and safetensors shards (with an index when there is more than one).

  Each file goes to a temporary name first, so an interrupted export leaves no broken file.
  """
  directory = Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  shards, current, size = [], {}, 0
  for name in sorted(tensors):
    array = np.ascontiguousarray(tensors[name])
    if current and size + array.nbytes > max_shard_bytes:
      shards.append(current)
      current, size = {}, 0
    current[name] = array
    size += array.nbytes
  shards.append(current)
  weight_map = {}
  for i, shard in enumerate(shards):
    name = SINGLE if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save = lambda tmp, shard=shard: save_file(shard, str(tmp), metadata={"format": "pt"})
    _write_then_rename(directory / name, save)
    weight_map.update({tensor: name for tensor in shard})
  if len(shards) > 1:
    total = sum(a.nbytes for a in tensors.values())
    _write_json(directory / INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map})
  _write_json(directory / "config.json", config)
  return directory
