"""The knowledge base on disk: one folder with

  manifest.json         settings, the generation, and per source: content hash and chunk count
  vectors-<gen>.npy     N x D float32 unit vectors, rows grouped by source
  chunks-<gen>.jsonl    N rows of metadata: source, chunk index, character span, tokens, text,
                        and for a PDF's chunks "pages": [first, last] (cite(name, row) says
                        "file.pdf p. 3" or "file.pdf pp. 3-4")

Why arrays on disk and not LanceDB or DuckDB: a knowledge base of this size (100k chunks x
384 floats = 150 MB) fits in memory, and exact search is one matmul of a few milliseconds
(BENCHMARKS.md), so an approximate index buys nothing; a database would add a dependency and
a file format for what three files and a manifest do. Revisit beyond a few million chunks.

Every write goes to a new generation's files (each written atomically), and the manifest,
written last and atomically, is the commit: a crash at any point leaves the previous
generation whole and readable. Old generations are deleted after the commit.

Incremental ingest: a source whose content hash (and chunking settings) are unchanged keeps
its rows; a changed one is re-chunked and re-embedded; one that is gone is removed; one that
cannot be read is skipped with a warning and keeps whatever rows it had; a PDF whose chunks
have no pages (stored before they were kept) is read again. Sources outside the ingested
folder are kept; new chunking settings re-chunk every source, so they are refused while the
store holds sources from elsewhere.
"""

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from research import files
from research.rag import chunk
from research.rag import extract
from research.rag import retrieve

FORMAT = 1
MANIFEST = "manifest.json"
CHUNKING = ("max_tokens", "overlap")  # the ingest settings the manifest records, beside dim


@dataclasses.dataclass
class Report:
  added: list[str] = dataclasses.field(default_factory=list)
  updated: list[str] = dataclasses.field(default_factory=list)
  unchanged: list[str] = dataclasses.field(default_factory=list)
  removed: list[str] = dataclasses.field(default_factory=list)
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (source, why)
  chunks: int = 0

  def summary(self) -> str:
    return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} "
            f"unchanged, {len(self.removed)} removed, {len(self.skipped)} skipped; "
            f"{self.chunks} chunks in the store")


def cite(name: str, row: dict) -> str:
  """How a chunk is cited: the source's name, with its page or pages when it has them."""
  if not row.get("pages"):
    return name
  first, last = row["pages"]
  return f"{name} p. {first}" if first == last else f"{name} pp. {first}-{last}"


def _sha256(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


def beir_documents(path) -> dict[str, tuple[str, str]]:
  """A BEIR corpus.jsonl as {source: (text, doc id)}; source is 'file#id'."""
  out = {}
  for n, line in enumerate(_utf8_lines(path), 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line)
      doc_id = str(row["_id"])
      if not all(isinstance(row.get(k, ""), str) for k in ("title", "text")):
        raise TypeError
    except (json.JSONDecodeError, KeyError, TypeError):
      raise ValueError(f"{path}: line {n}: expected a JSON object with _id, title, text "
                       "(BEIR corpus format).") from None
    text = "\n\n".join(s for s in (row.get("title", ""), row.get("text", "")) if s)
    out[f"{Path(path).resolve()}#{doc_id}"] = (text, doc_id)
  return out


def _utf8_lines(path) -> list[str]:
  try:
    return Path(path).read_bytes().decode("utf-8-sig").splitlines()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: byte {e.start}: not UTF-8 text.") from None


class KnowledgeBase:
  """The chunks of a folder: `kb = KnowledgeBase.open(dir)`; `kb.ingest(docs, embedder)`."""

  def __init__(self, directory, manifest: dict, vectors_NxD: np.ndarray, rows: list[dict]):
    self.dir = Path(directory)
    self.manifest = manifest
    self.vectors_NxD = vectors_NxD
    self.rows = rows

  @classmethod
  def open(cls, directory, dim: int = 384) -> "KnowledgeBase":
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
      return cls(directory, {"format": FORMAT, "generation": 0, "files": {}},
                 np.zeros((0, dim), np.float32), [])
    try:
      manifest = json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: line {e.lineno}: not valid JSON ({e.msg}).") from e
    if manifest.get("format") != FORMAT:
      raise ValueError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT}.")
    vectors_NxD = np.load(directory / manifest["vectors"])
    rows = [json.loads(line) for line in
            (directory / manifest["chunks"]).read_text(encoding="utf-8").splitlines()]
    if len(rows) != len(vectors_NxD) or len(rows) != manifest["rows"]:
      raise ValueError(f"{directory}: {len(vectors_NxD)} vectors and {len(rows)} chunks, the "
                       f"manifest says {manifest['rows']}.")
    return cls(directory, manifest, vectors_NxD, rows)

  def __len__(self):
    return len(self.rows)

  def label(self, source: str) -> str:
    """A source as clients see it: relative to the knowledge base's folder when inside it,
    else its file name (with #doc id), so no answer shows where the server keeps files."""
    try:
      return Path(source).relative_to(self.dir.resolve()).as_posix()
    except ValueError:
      return Path(source).name

  @property
  def texts(self) -> list[str]:
    return [r["text"] for r in self.rows]

  def retriever(self, embedder, **settings) -> retrieve.Retriever:
    """A Retriever over the chunks; `settings`: keyword_weight, fusion, normalization."""
    return retrieve.Retriever(self.vectors_NxD, self.texts, embedder, **settings)

  def ingest(self, docs, embedder, max_tokens: int = chunk.MAX_TOKENS,
             overlap: int = chunk.OVERLAP,
             log=logging.warning, progress: bool = False) -> Report:
    """Brings the store in line with `docs` (a folder, a file, or a BEIR corpus.jsonl)."""
    docs = Path(docs).resolve()
    if not docs.exists():
      raise FileNotFoundError(f"{docs}: no such file or folder to ingest.")
    settings = {"max_tokens": max_tokens, "overlap": overlap, "dim": embedder.dim}
    same_settings = all(self.manifest.get(k) == v for k, v in settings.items())
    old = self.manifest["files"] if same_settings else {}
    paged = {r["source"] for r in self.rows if "pages" in r}
    old = {s: f if s in paged or Path(s).suffix.lower() not in extract.PDF_SUFFIXES
           else dict(f, sha256="") for s, f in old.items()}  # a PDF read before pages were kept
    report = Report()
    texts: dict[str, tuple[extract.Document, str | None]] = {}  # source -> (document, doc id)
    hashes: dict[str, str] = {}
    if docs.is_file() and docs.suffix == ".jsonl":
      for source, (text, doc_id) in beir_documents(docs).items():
        texts[source] = (extract.Document(text), doc_id)
        hashes[source] = _sha256(text.encode())
      under = lambda s: s.startswith(f"{docs}#")
    else:
      paths = [docs] if docs.is_file() else sorted(
          p for p in docs.rglob("*") if p.is_file() and not p.name.startswith("."))
      for path in paths:
        source = str(path)
        try:
          if why := extract.too_big(path):
            report.skipped.append((source, why))
            continue
          digest = _sha256(path.read_bytes())
        except OSError as e:
          report.skipped.append((source, str(e)))
          continue
        if old.get(source, {}).get("sha256") == digest:
          hashes[source] = digest
          continue
        document, why = extract.extract(path)
        if document is None:
          report.skipped.append((source, why))
          continue
        texts[source] = (document, None)
        hashes[source] = digest
      under = lambda s: s == str(docs) or s.startswith(f"{docs}/")
    if not same_settings:
      elsewhere = [s for s in self.manifest["files"] if not under(s)]
      if elsewhere:  # they would be dropped: this ingest cannot re-chunk what it does not read
        was = ", ".join(f"{k}={self.manifest.get(k)}" for k in settings)
        raise ValueError(f"{self.dir}: its chunks of {len(elsewhere)} sources outside {docs} "
                         f"were made with {was}; ingest with those settings, or into a new "
                         "folder.")
    if docs.is_file() and report.skipped:  # the one document asked for: a bad input
      hint = f" (expected one of {', '.join(extract.suffixes())})" if docs.suffix.lower() \
          not in extract.suffixes() else ""
      raise ValueError(f"{docs}: {report.skipped[0][1]}{hint}; nothing was ingested.")
    for source, why in report.skipped:
      kept = " (its previous chunks stay in the store)" if source in old else ""
      log(f"skipped {source}: {why}{kept}")

    skipped = {s for s, _ in report.skipped}
    new_files, new_rows, new_vectors = {}, [], []
    old_rows = self._rows_by_source() if same_settings else {}
    for source in sorted(set(old) | set(hashes)):
      keep_old = source in old and (
          old[source]["sha256"] == hashes.get(source)
          or source in skipped or not under(source))
      if keep_old:
        rows = old_rows[source]
        new_files[source] = old[source]
        new_rows += [self.rows[r] for r in rows]
        new_vectors.append(self.vectors_NxD[rows])
        if source in hashes:
          report.unchanged.append(source)
      elif source in hashes and source in texts:
        (report.updated if source in old else report.added).append(source)
      else:
        report.removed.append(source)

    pending = []  # (source, chunk) for the changed and the new
    for source in report.added + report.updated:
      document, doc_id = texts[source]
      pieces = chunk.split(document.text, embedder.count_tokens, max_tokens, overlap)
      new_files[source] = {"sha256": hashes[source], "chunks": len(pieces)}
      if doc_id is not None:
        new_files[source]["doc_id"] = doc_id
      pending += [(source, document, doc_id, i, c) for i, c in enumerate(pieces)]
    if pending:
      new_vectors.append(embedder.encode([c.text for *_, c in pending], progress=progress))
      for source, document, doc_id, i, c in pending:
        row = {"source": source, "chunk": i, "start": c.start, "end": c.end,
               "tokens": c.tokens, "text": c.text}
        if doc_id is not None:
          row["doc_id"] = doc_id
        if pages := document.pages(c.start, c.end):
          row["pages"] = list(pages)
        new_rows.append(row)
    vectors_NxD = (np.concatenate(new_vectors).astype(np.float32) if new_vectors
                   else np.zeros((0, embedder.dim), np.float32))
    changed = report.added or report.updated or report.removed or not same_settings
    if changed or not (self.dir / MANIFEST).is_file():
      self._commit(dict(settings, files=new_files), vectors_NxD, new_rows)
    report.chunks = len(self.rows)
    return report

  def _rows_by_source(self) -> dict[str, list[int]]:
    out = {}
    for i, row in enumerate(self.rows):
      out.setdefault(row["source"], []).append(i)
    return out

  def _commit(self, manifest: dict, vectors_NxD: np.ndarray, rows: list[dict]) -> None:
    generation = self.manifest.get("generation", 0) + 1
    manifest = dict(manifest, format=FORMAT, generation=generation, rows=len(rows),
                    vectors=f"vectors-{generation}.npy", chunks=f"chunks-{generation}.jsonl")
    self.dir.mkdir(parents=True, exist_ok=True)
    with files.atomic_path(self.dir / manifest["vectors"]) as tmp:
      with open(tmp, "wb") as f:
        np.save(f, vectors_NxD)
    files.write_text(self.dir / manifest["chunks"],
                     "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    files.write_json(self.dir / MANIFEST, manifest)  # the commit point
    for stale in list(self.dir.glob("vectors-*.npy")) + list(self.dir.glob("chunks-*.jsonl")):
      if stale.name not in (manifest["vectors"], manifest["chunks"]):
        stale.unlink(missing_ok=True)
    self.manifest, self.vectors_NxD, self.rows = manifest, vectors_NxD, rows
