"""Writes that never leave a half-written file behind: temporary name, then rename."""

import contextlib
import json
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path`; renames it into place only on success."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  os.close(fd)
  try:
    yield Path(tmp)
    os.replace(tmp, path)  # atomic on POSIX when both names share a filesystem
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_text(path, text: str) -> Path:
  with atomic_path(path) as tmp:
    tmp.write_text(text, encoding="utf-8")
  return Path(path)


def write_bytes(path, data: bytes) -> Path:
  with atomic_path(path) as tmp:
    tmp.write_bytes(data)
  return Path(path)


def write_json(path, obj) -> Path:
  return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def save_figure(fig, path, dpi: int = 110) -> Path:
  """Saves a matplotlib figure atomically as PNG and closes it."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  with atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
  plt.close(fig)
  return Path(path)
