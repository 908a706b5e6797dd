import json

import pytest

from research import files


def test_write_json_round_trips(tmp_path):
  path = files.write_json(tmp_path / "a" / "x.json", {"b": 1, "a": [1, 2]})
  assert json.loads(path.read_text()) == {"a": [1, 2], "b": 1}


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
  path = tmp_path / "x.txt"
  files.write_text(path, "good")
  with pytest.raises(RuntimeError):
    with files.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise RuntimeError("crash mid-write")
  assert path.read_text() == "good"
  assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_save_figure_writes_a_png(tmp_path):
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots()
  ax.plot([0, 1], [0, 1])
  path = files.save_figure(fig, tmp_path / "f.png")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
