import ast
import json
from pathlib import Path

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
