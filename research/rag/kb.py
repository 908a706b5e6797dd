"""A knowledge base kept as a folder of uploaded documents beside its store:

  <folder>/documents/     the uploaded files, each under a plain base name
  <folder>/manifest.json  the store of their chunks (store.py), brought in line by an ingest

  kb.add_document(folder, "notes.txt", data, extract.suffixes())   # ValueError: a bad name;
                                                       # FileExistsError unless replace=True
  ingests = kb.Ingests()
  ingests.start("docs", folder, load_embedder)         # a background ingest; Busy if any runs
  ingests.delete_document("docs", folder, "notes.txt", load_embedder)  # one without it, then
                                                       # the file goes (back, if it failed)
  ingests.progress("docs")                             # {"state", "done", "total", "message"}

What the web router adds is only HTTP: names of knowledge bases, upload limits, status codes.
"""

import dataclasses
import re
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from research import files
from research.rag import store

DOCUMENTS = "documents"
# An uploaded file keeps its base name only when it is plain: no separators, no leading dot.
FILE_NAME = re.compile(r"[\w][\w .()+,=@-]{0,199}")
REMOVING = ".removing"  # a deleted document waits here, outside documents/, for its ingest
CHUNKS_SHOWN = 500  # the first chunks `describe` lists; the total is given beside them


class Busy(RuntimeError):
  """An ingest of this knowledge base is already running."""


def safe_file_name(raw: str | None, allowed_suffixes) -> str:
  """The base name of an upload, or ValueError: nothing of it may name another folder."""
  name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
  if not name or name in (".", "..") or not FILE_NAME.fullmatch(name) or name.endswith("."):
    raise ValueError(f"file name {raw!r}: expected a plain name of letters, digits, spaces "
                     "and ._-()+,=@ that does not start with a dot.")
  suffix = Path(name).suffix.lower()
  if suffix not in allowed_suffixes:
    raise ValueError(f"file name {raw!r}: expected one of the types {list(allowed_suffixes)}.")
  return name


def inside(folder: Path, name: str) -> Path:
  """folder/name, checked once more after resolving links: it must lie directly in folder."""
  path = (Path(folder) / name).resolve()
  if path.parent != Path(folder).resolve():
    raise ValueError(f"file name {name!r}: resolves outside the documents folder.")
  return path


def create(folder) -> Path:
  """An empty knowledge base (its documents folder) at `folder`; an existing one is kept."""
  (Path(folder) / DOCUMENTS).mkdir(parents=True, exist_ok=True)
  return Path(folder)


def add_document(folder, raw_name: str | None, data: bytes, allowed_suffixes,
                 replace: bool = False) -> str:
  """Writes `data` (atomically) as documents/<base name of raw_name>; returns that name.
  FileExistsError when that document exists, unless `replace`."""
  name = safe_file_name(raw_name, allowed_suffixes)
  target = inside(Path(folder) / DOCUMENTS, name)
  if target.exists() and not replace:
    raise FileExistsError(f"{name} is already a document of this knowledge base; upload it "
                          "with replace=true to replace it.")
  target.parent.mkdir(parents=True, exist_ok=True)
  files.write_bytes(target, data)
  return name


def document_path(folder, file_name: str) -> Path:
  """The uploaded document `file_name`: ValueError for a name that is not plain,
  FileNotFoundError when there is no such document."""
  if not FILE_NAME.fullmatch(file_name) or file_name.endswith("."):
    raise ValueError(f"file name {file_name!r}: expected the plain name of one of the "
                     "knowledge base's documents.")
  path = inside(Path(folder) / DOCUMENTS, file_name)
  if not path.is_file():
    raise FileNotFoundError(f"{Path(folder).name}: no document {file_name!r}.")
  return path


def describe(folder) -> dict:
  """Its documents (with their chunk counts) and the first CHUNKS_SHOWN chunks."""
  folder = Path(folder)
  base = store.KnowledgeBase.open(folder)
  counts = {}
  for row in base.rows:
    counts[row["source"]] = counts.get(row["source"], 0) + 1
  docs = folder / DOCUMENTS
  documents = [{"name": f.name, "bytes": f.stat().st_size,
                "chunks": counts.get(str(f.resolve()), 0)}
               for f in (sorted(docs.iterdir()) if docs.is_dir() else [])
               if f.is_file() and not f.name.startswith(".")]
  chunks = [_shown(r) for r in base.rows[:CHUNKS_SHOWN]]
  return {"documents": documents, "chunks": chunks, "total_chunks": len(base),
          "sources": len(counts)}


def _shown(row: dict) -> dict:
  """A chunk as the page lists it: its file's name (no folder), "cite" with the page."""
  name = Path(row["source"]).name
  shown = {"source": name, "chunk": row["chunk"], "tokens": row.get("tokens"),
           "text": row["text"], "cite": store.cite(name, row)}
  if "pages" in row:
    shown["pages"] = row["pages"]
  return shown


@dataclasses.dataclass
class Progress:
  state: str = "idle"      # idle | reading | embedding | done | failed
  done: int = 0            # chunks embedded so far
  total: int = 0           # chunks to embed in this ingest
  message: str = ""

  def as_dict(self) -> dict:
    return dataclasses.asdict(self)


class CountingEmbedder:
  """The embedder an ingest sees: it embeds in batches and reports how far it got."""

  def __init__(self, embedder, progress: Progress, batch_size: int = 32):
    self.inner, self.progress, self.batch_size = embedder, progress, batch_size
    self.dim = embedder.dim

  def count_tokens(self, texts):
    return self.inner.count_tokens(texts)

  def encode(self, texts, progress: bool = False):
    del progress
    self.progress.state, self.progress.total, self.progress.done = "embedding", len(texts), 0
    parts = []
    for start in range(0, len(texts), self.batch_size):
      parts.append(self.inner.encode(texts[start:start + self.batch_size]))
      self.progress.done = min(start + self.batch_size, len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)


def relative(text: str, folder) -> str:
  """`text` with the knowledge base's folder taken off every path in it: what the server
  shows names files as the knowledge base knows them, never where the server keeps them."""
  for prefix in {str(Path(folder).resolve()), str(Path(folder).absolute())}:
    text = text.replace(prefix + "/", "").replace(prefix, Path(folder).name)
  return text


def ingest(folder, embedder, progress: Progress | None = None) -> store.Report:
  """Brings the store at `folder` in line with its documents, chunked as its manifest says
  (a store built by `experiments.rag ingest --max_tokens=...` keeps its settings, and every
  source outside documents/ stays); `progress` counts the chunks embedded and ends with the
  report and any skipped files as its message."""
  folder, progress = Path(folder), progress or Progress()
  warnings = []
  counting = CountingEmbedder(embedder, progress)
  create(folder)
  base = store.KnowledgeBase.open(folder, dim=counting.dim)
  chunking = {k: base.manifest[k] for k in store.CHUNKING if k in base.manifest}
  report = base.ingest(folder / DOCUMENTS, counting, log=warnings.append, **chunking)
  progress.message = relative(report.summary() + "".join(f"; {w}" for w in warnings), folder)
  return report


class Ingests:
  """One background ingest at a time, whichever knowledge base (each holds the embedder and
  the CPU for its whole run), and the progress of the last one of each."""

  def __init__(self):
    self._progress: dict[str, Progress] = {}
    self._lock = threading.Lock()

  def progress(self, key: str) -> dict:
    return self._progress.get(key, Progress()).as_dict()

  def running(self) -> str | None:
    """The key of the ingest now running, if any."""
    return next((k for k, p in self._progress.items() if p.state in ("reading", "embedding")),
                None)

  def start(self, key: str, folder, load_embedder: Callable, on_done: Callable = lambda: None,
            remove: Path | None = None) -> dict:
    """Ingests `folder` in a thread, then calls on_done(). `remove` (a document) is moved
    aside first and deleted once the ingest has taken its chunks out; if the ingest fails
    it is put back, so documents and chunks always agree. Busy when an ingest runs."""
    folder = Path(folder)
    with self._lock:
      current = self.running()
      if current == key:
        raise Busy(f"knowledge base {key!r} is already ingesting.")
      if current is not None:
        raise Busy(f"knowledge base {current!r} is ingesting; one ingest runs at a time, so "
                   "retry when it is done.")
      aside = None
      if remove is not None:
        aside = folder / REMOVING / remove.name
        aside.parent.mkdir(exist_ok=True)
        remove.replace(aside)  # out of documents/, on the same disk: no copy, no loss
      progress = self._progress[key] = Progress(state="reading")
    create(folder)
    threading.Thread(target=self._run, args=(folder, load_embedder, on_done, progress, remove,
                                             aside), daemon=True, name=f"ingest-{key}").start()
    return progress.as_dict()

  def delete_document(self, key: str, folder, file_name: str, load_embedder: Callable,
                      on_done: Callable = lambda: None) -> dict:
    """Removes one document and starts the ingest that takes its chunks out of the store
    (unchanged documents are not embedded again)."""
    path = document_path(folder, file_name)
    return self.start(key, folder, load_embedder, on_done, remove=path)

  @staticmethod
  def _run(folder, load_embedder, on_done, progress: Progress, removed=None, aside=None):
    try:
      ingest(folder, load_embedder(), progress)
      if aside is not None:
        aside.unlink(missing_ok=True)
      on_done()  # e.g. the server reopens the store before the page is told it is done
      progress.state = "done"
    except Exception as e:  # pylint: disable=broad-except  (shown on the page, not lost)
      if aside is not None and aside.exists() and not removed.exists():
        aside.replace(removed)  # its chunks are still in the store, so it comes back too
      progress.message = relative(f"{type(e).__name__}: {e}", folder)
      progress.state = "failed"
