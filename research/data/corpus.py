"""Where the text comes from: a default corpus every Python install has, or files on disk.

The default corpus is the docstrings of the Python standard library (modules, classes and
functions, about 1.6 MB of English prose with code examples on CPython 3.11). It is read from
the .py sources with `ast`, never by importing them (importing `antigravity` opens a browser),
in sorted path order, so one Python version always gives the same text.
"""

import ast
import functools
import sysconfig
from pathlib import Path

# Test suites, the IDE, demos and vendored tools are not the library's documentation.
_SKIP_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "lib2to3", "ensurepip",
                        "turtledemo", "pydoc_data", "site-packages", "dist-packages",
                        "__pycache__"})
_TEXT_SUFFIXES = (".txt", ".md")


@functools.cache
def default_corpus() -> str:
  """Docstrings of the standard library, joined by blank lines (a few seconds, cached)."""
  root = Path(sysconfig.get_paths()["stdlib"])
  docstrings = []
  for path in _stdlib_sources(root):
    try:
      tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError, OSError):
      continue  # a broken file in someone's stdlib should not stop the corpus
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        if doc := ast.get_docstring(node):
          docstrings.append(doc)
  if not docstrings:
    raise FileNotFoundError(f"{root}: found no Python sources with docstrings for the "
                            "default corpus; pass a text file or folder instead.")
  return "\n\n".join(docstrings) + "\n"


def _stdlib_sources(root: Path) -> list[Path]:
  paths = []
  for path in root.rglob("*.py"):
    parts = path.relative_to(root).parts
    if any(p in _SKIP_DIRS or p.startswith(("test", "config-")) for p in parts[:-1]):
      continue
    if parts[-1].startswith("test_"):
      continue
    paths.append(path)
  return sorted(paths, key=lambda p: p.relative_to(root).as_posix())


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
  """The first (1 - val_fraction) of the text and the rest, cut just after a newline when the
  text has one near the cut (so no line is split between the two)."""
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f"val_fraction={val_fraction}: expected a number in [0, 1).")
  cut = int(len(text) * (1.0 - val_fraction))
  newline = text.rfind("\n", 0, cut)
  if newline >= 0 and cut - newline < 10_000:
    cut = newline + 1
  return text[:cut], text[cut:]


def load_text(path) -> str:
  """The text of one file, or of every .txt/.md file under a folder (sorted, blank-line joined)."""
  path = Path(path)
  if path.is_dir():
    found = sorted((p for p in path.rglob("*") if p.suffix in _TEXT_SUFFIXES and p.is_file()),
                   key=lambda p: p.relative_to(path).as_posix())
    if not found:
      raise FileNotFoundError(f"{path}: the folder holds no .txt or .md files.")
    return "\n\n".join(_read(p) for p in found)
  return _read(path)


def _read(path: Path) -> str:
  try:
    return path.read_text(encoding="utf-8")
  except FileNotFoundError:
    raise FileNotFoundError(f"{path}: no such file or folder; expected a text file or a "
                            "folder of .txt/.md files.") from None
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: byte {e.start} is not UTF-8; expected a UTF-8 text file.") from None
  except OSError as e:
    raise OSError(f"{path}: cannot read the file ({e.strerror}).") from None
