"""Knowledge-base operations on a folder of uploads, without HTTP: names, describe, the
background ingest with progress, deleting a document, one ingest at a time."""

import threading
import time

import numpy as np
import pytest

from research.rag import extract
from research.rag import kb
from tests.rag.conftest import WordEmbedder

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

  class Gated(WordEmbedder):
    def encode(self, texts, progress=False):
      release.wait(30)
      return super().encode(texts, progress)

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
