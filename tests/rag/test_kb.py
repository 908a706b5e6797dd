"""Knowledge-base operations on a folder of uploads, without HTTP: names, describe, the
background ingest with progress, deleting a document, one ingest at a time."""

import threading
import time

import numpy as np
import pytest

from research.rag import extract
from research.rag import kb
from tests.rag.conftest import WordEmbedder
from tests.rag.conftest import gated_embedder

ALLOWED = extract.suffixes()


def wait_done(ingests, key, timeout_s=60.0):
  deadline = time.monotonic() + timeout_s
  while ingests.progress(key)["state"] in ("reading", "embedding"):
    assert time.monotonic() < deadline, ingests.progress(key)
    time.sleep(0.02)
  return ingests.progress(key)


def test_counting_embedder_reports_each_batch():
  inner, progress, seen = WordEmbedder(), kb.Progress(), []

  class Watching(WordEmbedder):
    def encode(self, texts, progress=False):
      seen.append((state.progress.done, state.progress.total))
      return inner.encode(texts)

  state = kb.CountingEmbedder(Watching(), progress, batch_size=3)
  texts = [f"text {i}" for i in range(7)]
  vectors = state.encode(texts)
  np.testing.assert_array_equal(vectors, inner.encode(texts))
  assert seen == [(0, 7), (3, 7), (6, 7)]
  assert (progress.state, progress.done, progress.total) == ("embedding", 7, 7)


@pytest.mark.parametrize("raw, stored", [("../../x.txt", "x.txt"), ("C:\\me\\doc.html", "doc.html"),
                                         ("a/b/../../c.md", "c.md")])
def test_documents_keep_only_their_base_name(tmp_path, raw, stored):
  assert kb.add_document(kb.create(tmp_path / "docs"), raw, b"text", ALLOWED) == stored
  assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
      f"docs/{kb.DOCUMENTS}/{stored}"]


@pytest.mark.parametrize("raw", ["", "..", ".hidden.txt", "x.txt.", "notes.exe", "a\x00b.txt"])
def test_bad_document_names_are_refused_and_nothing_is_written(tmp_path, raw):
  with pytest.raises(ValueError, match="file name"):
    kb.add_document(tmp_path, raw, b"text", ALLOWED)
  assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_ingest_describe_then_delete_keeps_the_unchanged_document(tmp_path):
  folder = kb.create(tmp_path / "docs")
  kb.add_document(folder, "adam.md", b"Adam keeps two moving averages.\n\nIts betas are 0.9.",
                  ALLOWED)
  kb.add_document(folder, "sgd.txt", b"Plain SGD steps against the gradient.", ALLOWED)
  kb.add_document(folder, "empty.txt", b"   ", ALLOWED)
  embedder, ingests, reopened = WordEmbedder(), kb.Ingests(), []
  ingests.start("docs", folder, lambda: embedder, lambda: reopened.append(1))
  done = wait_done(ingests, "docs")
  assert done["state"] == "done" and done["done"] == done["total"] > 0, done
  assert "2 added" in done["message"] and "empty.txt" in done["message"] and reopened == [1]
  described = kb.describe(folder)
  chunks = {d["name"]: d["chunks"] for d in described["documents"]}
  assert chunks["empty.txt"] == 0 and chunks["adam.md"] > 0 and chunks["sgd.txt"] > 0
  assert described["total_chunks"] == chunks["adam.md"] + chunks["sgd.txt"] == done["total"]

  embedded = embedder.embedded
  ingests.delete_document("docs", folder, "sgd.txt", lambda: embedder)
  done = wait_done(ingests, "docs")
  assert "1 removed" in done["message"] and embedder.embedded == embedded  # nothing re-embedded
  described = kb.describe(folder)
  assert {c["source"] for c in described["chunks"]} == {"adam.md"}
  assert described["total_chunks"] == chunks["adam.md"]
  with pytest.raises(FileNotFoundError):
    ingests.delete_document("docs", folder, "sgd.txt", lambda: embedder)
  with pytest.raises(ValueError, match="plain name"):
    ingests.delete_document("docs", folder, "..", lambda: embedder)


def test_one_ingest_at_a_time_and_a_failure_is_shown(tmp_path):
  folder = kb.create(tmp_path / "docs")
  kb.add_document(folder, "a.txt", b"Some words.", ALLOWED)
  release = threading.Event()
  Gated = gated_embedder(release)

  ingests = kb.Ingests()
  ingests.start("docs", folder, Gated)
  with pytest.raises(kb.Busy, match="already ingesting"):
    ingests.start("docs", folder, Gated)
  with pytest.raises(kb.Busy):
    ingests.delete_document("docs", folder, "a.txt", Gated)
  assert (folder / kb.DOCUMENTS / "a.txt").is_file()  # a refused delete removes nothing
  release.set()
  assert wait_done(ingests, "docs")["state"] == "done"

  def broken():
    raise OSError("no embedding model here")

  ingests.start("docs", folder, broken)
  failed = wait_done(ingests, "docs")
  assert failed["state"] == "failed" and "no embedding model" in failed["message"]


def test_a_ui_ingest_keeps_a_store_built_from_the_command_line(tmp_path):
  from research.rag import store  # pylint: disable=g-import-not-at-top
  docs = tmp_path / "docs"  # outside the knowledge base's documents/ folder
  docs.mkdir()
  (docs / "adam.txt").write_text("Adam uses betas 0.9 and 0.999 for its moment estimates.")
  (docs / "rope.txt").write_text("Rotary position embeddings rotate query and key pairs.")
  folder = tmp_path / "notes"
  built = store.KnowledgeBase.open(folder).ingest(docs, WordEmbedder(), max_tokens=256,
                                                  log=print)
  assert built.chunks == 2
  rows = store.KnowledgeBase.open(folder).rows

  report = kb.ingest(folder, WordEmbedder())
  assert (report.chunks, report.removed) == (2, [])
  assert store.KnowledgeBase.open(folder).rows == rows
  kb.add_document(folder, "sgd.txt", b"Plain SGD steps against the gradient.", ALLOWED)
  progress = kb.Progress()
  report = kb.ingest(folder, WordEmbedder(), progress)
  after = store.KnowledgeBase.open(folder)
  assert (report.chunks, len(report.added), report.removed) == (3, 1, [])
  assert after.rows[:2] == rows and after.manifest["max_tokens"] == 256
  assert progress.message.startswith("1 added, 0 updated, 0 unchanged, 0 removed")

  class Wider(WordEmbedder):  # another embedder: every chunk would need embedding again
    dim = 8

  ingests = kb.Ingests()
  ingests.start("notes", folder, Wider)
  failed = wait_done(ingests, "notes")
  assert failed["state"] == "failed" and failed["message"] == (
      "ValueError: notes: its chunks of 2 sources outside documents were made with "
      "max_tokens=256, overlap=32, dim=16; ingest with those settings, or into a new folder.")
  assert store.KnowledgeBase.open(folder).rows == after.rows  # nothing dropped


def test_a_failed_ingest_after_a_delete_puts_the_document_back(tmp_path):
  folder = kb.create(tmp_path / "docs")
  kb.add_document(folder, "a.txt", b"Some words.", ALLOWED)
  ingests = kb.Ingests()
  ingests.start("docs", folder, WordEmbedder)
  assert wait_done(ingests, "docs")["state"] == "done"

  def broken():
    raise OSError(f"no embedding model in {folder.resolve()}/models")

  ingests.delete_document("docs", folder, "a.txt", broken)
  failed = wait_done(ingests, "docs")
  assert failed["state"] == "failed"
  described = kb.describe(folder)  # the file and its chunks, both still there
  assert [d["name"] for d in described["documents"]] == ["a.txt"]
  assert described["documents"][0]["chunks"] == described["total_chunks"] == 1
  assert (folder / kb.DOCUMENTS / "a.txt").read_bytes() == b"Some words."
  # no server path in what the page shows
  assert failed["message"] == "OSError: no embedding model in models"


def test_one_ingest_at_a_time_on_the_whole_server(tmp_path):
  release = threading.Event()
  Gated = gated_embedder(release)

  ingests = kb.Ingests()
  for name in ("a", "b"):
    kb.add_document(kb.create(tmp_path / name), "x.txt", b"Some words.", ALLOWED)
  ingests.start("a", tmp_path / "a", Gated)
  with pytest.raises(kb.Busy, match=r"^knowledge base 'a' is ingesting; one ingest runs at a "):
    ingests.start("b", tmp_path / "b", Gated)
  release.set()
  assert wait_done(ingests, "a")["state"] == "done"
  ingests.start("b", tmp_path / "b", Gated)
  assert wait_done(ingests, "b")["state"] == "done"


def test_an_upload_never_replaces_a_document_unasked(tmp_path):
  folder = kb.create(tmp_path / "docs")
  kb.add_document(folder, "a.txt", b"first", ALLOWED)
  with pytest.raises(FileExistsError, match=r"^a.txt is already a document .* replace=true"):
    kb.add_document(folder, "a.txt", b"second", ALLOWED)
  assert (folder / kb.DOCUMENTS / "a.txt").read_bytes() == b"first"
  kb.add_document(folder, "a.txt", b"second", ALLOWED, replace=True)
  assert (folder / kb.DOCUMENTS / "a.txt").read_bytes() == b"second"
