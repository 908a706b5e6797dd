"""HF model directories: safetensors shards and their index round-trip; bad ones are named;
third_party imports nothing of ours."""

import ast
import json
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from third_party import hf_checkpoint

THIRD_PARTY = Path(hf_checkpoint.__file__).parent


@pytest.mark.parametrize("path", sorted(THIRD_PARTY.glob("*.py")), ids=lambda p: p.name)
def test_third_party_imports_nothing_of_ours(path):
  # The arrows run experiments -> research -> third_party, never back.
  for node in ast.walk(ast.parse(path.read_text())):
    names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
             [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
    for name in names:
      assert name.split(".")[0] not in ("research", "experiments"), f"{path.name} imports {name}"


def test_write_round_trips_and_leaves_no_temporary(tmp_path):
  tensors = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
  hf_checkpoint.write(tmp_path, tensors, {"model_type": "llama"})
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
  assert json.loads((tmp_path / "config.json").read_text()) == {"model_type": "llama"}
  np.testing.assert_array_equal(hf_checkpoint.load_tensors(tmp_path)["a.weight"],
                                tensors["a.weight"])


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
  good = {"a.weight": np.ones((2, 2), np.float32)}
  hf_checkpoint.write(tmp_path, good, {"model_type": "llama"})

  def crash(shard, filename, metadata):
    Path(filename).write_bytes(b"half")
    raise RuntimeError("disk full")

  monkeypatch.setattr(hf_checkpoint, "save_file", crash)
  with pytest.raises(RuntimeError):
    hf_checkpoint.write(tmp_path, {"a.weight": np.zeros((2, 2), np.float32)}, {})
  np.testing.assert_array_equal(hf_checkpoint.load_tensors(tmp_path)["a.weight"], good["a.weight"])
  assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]


def test_sharded_export_round_trips(tmp_path):
  rng = np.random.default_rng(0)
  tensors = {f"w{i}": rng.normal(size=(64, 64)).astype(np.float32) for i in range(5)}
  tensors["bf16"] = rng.normal(size=(3, 5)).astype(ml_dtypes.bfloat16)
  hf_checkpoint.write(tmp_path, tensors, {"model_type": "llama"}, max_shard_bytes=2 * 64 * 64 * 4)
  assert len(hf_checkpoint.tensor_files(tmp_path)) == 3  # two 16 KiB tensors a shard
  assert hf_checkpoint.read_config(tmp_path) == {"model_type": "llama"}
  loaded = hf_checkpoint.load_tensors(tmp_path)
  assert sorted(loaded) == sorted(tensors)
  for name in tensors:
    assert loaded[name].dtype == tensors[name].dtype
    np.testing.assert_array_equal(loaded[name], tensors[name])
  assert not [p for p in tmp_path.iterdir() if p.suffix not in (".json", ".safetensors")]


def test_one_shard_needs_no_index(tmp_path):
  hf_checkpoint.write(tmp_path, {"w": np.ones((2, 2), np.float32)}, {})
  assert hf_checkpoint.tensor_files(tmp_path) == [tmp_path / hf_checkpoint.SINGLE]
  assert not (tmp_path / hf_checkpoint.INDEX).exists()


def test_bad_directories_are_named(tmp_path):
  with pytest.raises(FileNotFoundError, match="no config.json"):
    hf_checkpoint.read_config(tmp_path)
  (tmp_path / "config.json").write_text('{"model_type":\n  llama}')
  with pytest.raises(ValueError, match=r"config.json: line 2: not valid JSON"):
    hf_checkpoint.read_config(tmp_path)
  with pytest.raises(FileNotFoundError, match="no model.safetensors or"):
    hf_checkpoint.tensor_files(tmp_path)
  index = tmp_path / hf_checkpoint.INDEX
  index.write_text(json.dumps({"weight_map": {"w": "model-00001-of-00002.safetensors"}}))
  with pytest.raises(FileNotFoundError, match="lists model-00001-of-00002.safetensors, which"):
    hf_checkpoint.tensor_files(tmp_path)
  index.write_text(json.dumps({"weight_map": {}}))
  with pytest.raises(ValueError, match="weight_map lists no files"):
    hf_checkpoint.tensor_files(tmp_path)
