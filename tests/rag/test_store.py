import json
import logging
from pathlib import Path

import numpy as np
import pytest

from research import files
from research.rag import answer
from research.rag import store
from tests.rag import documents


def _docs(tmp_path):
  docs = tmp_path / "docs"
  docs.mkdir()
  (docs / "a.txt").write_text("Alpha is the first letter.\n\nIt comes before beta.")
  (docs / "b.md").write_text("# Beta\n\nBeta is the second letter.")
  (docs / "c.html").write_text("<html><head><style>p{}</style><script>var x=1;</script></head>"
                               "<body><h1>Gamma</h1><p>Gamma is the third &amp; last.</p>"
                               "</body></html>")
  return docs


def test_ingest_then_reopen(tmp_path, word_embedder):
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  report = kb.ingest(_docs(tmp_path), word_embedder, max_tokens=8, overlap=2)
  assert len(report.added) == 3 and not report.skipped
  again = store.KnowledgeBase.open(tmp_path / "kb")
  assert again.rows == kb.rows and np.array_equal(again.vectors_NxD, kb.vectors_NxD)
  html_rows = [r for r in again.rows if r["source"].endswith("c.html")]
  assert "var x" not in " ".join(r["text"] for r in html_rows)
  assert "Gamma is the third & last." in " ".join(r["text"] for r in html_rows)
  assert [r["chunk"] for r in html_rows] == list(range(len(html_rows)))
  for row in again.rows:
    assert set(row) >= {"source", "chunk", "start", "end", "tokens", "text"}


def test_reingest_skips_unchanged_replaces_changed_removes_deleted(tmp_path, word_embedder):
  docs = _docs(tmp_path)
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(docs, word_embedder)
  before = {r["source"]: r for r in kb.rows}
  word_embedder.embedded = 0
  report = kb.ingest(docs, word_embedder)
  assert (len(report.unchanged), report.added, report.updated, report.removed) == (3, [], [], [])
  assert word_embedder.embedded == 0
  (docs / "a.txt").write_text("Alpha changed its mind.")
  (docs / "b.md").unlink()
  (docs / "d.txt").write_text("Delta is new.")
  report = kb.ingest(docs, word_embedder)
  assert [s.rsplit("/", 1)[1] for s in report.updated] == ["a.txt"]
  assert [s.rsplit("/", 1)[1] for s in report.removed] == ["b.md"]
  assert [s.rsplit("/", 1)[1] for s in report.added] == ["d.txt"]
  assert word_embedder.embedded == 2
  texts = {r["source"].rsplit("/", 1)[1]: r["text"] for r in kb.rows}
  assert texts == {"a.txt": "Alpha changed its mind.", "c.html": before[
      str(docs / "c.html")]["text"], "d.txt": "Delta is new."}
  reopened = store.KnowledgeBase.open(tmp_path / "kb")
  assert reopened.rows == kb.rows
  np.testing.assert_array_equal(reopened.vectors_NxD, word_embedder.encode(reopened.texts))
  assert sorted(p.name for p in (tmp_path / "kb").iterdir()) == [
      "chunks-2.jsonl", "manifest.json", "vectors-2.npy"]  # the no-op wrote nothing


def test_binary_and_unreadable_files_are_skipped_by_name_and_lose_nothing(
    tmp_path, word_embedder, caplog):
  docs = _docs(tmp_path)
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(docs, word_embedder)
  rows = list(kb.rows)
  (docs / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
  (docs / "a.txt").write_bytes(b"\x00\x01binary now")
  (docs / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
  with caplog.at_level(logging.WARNING):
    report = kb.ingest(docs, word_embedder, log=logging.warning)
  names = sorted(s.rsplit("/", 1)[1] for s, _ in report.skipped)
  assert names == ["a.txt", "image.png", "latin1.txt"]
  for name in names:
    assert name in caplog.text
  assert "previous chunks stay" in caplog.text
  assert kb.rows == rows  # a.txt keeps its old chunks


def test_a_crash_while_writing_leaves_the_previous_store_whole(tmp_path, word_embedder,
                                                                monkeypatch):
  docs = _docs(tmp_path)
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(docs, word_embedder)
  rows, manifest = list(kb.rows), json.loads((tmp_path / "kb" / "manifest.json").read_text())
  (docs / "d.txt").write_text("Delta is new.")

  def crash(path, obj):
    raise OSError("disk full")
  monkeypatch.setattr(files, "write_json", crash)
  with pytest.raises(OSError, match="disk full"):
    store.KnowledgeBase.open(tmp_path / "kb").ingest(docs, word_embedder)
  monkeypatch.undo()
  reopened = store.KnowledgeBase.open(tmp_path / "kb")
  assert reopened.rows == rows and reopened.manifest == manifest
  assert not list((tmp_path / "kb").glob(".*.tmp"))


def test_beir_corpus_is_ingested_one_record_per_document(tmp_path, word_embedder):
  corpus = tmp_path / "corpus.jsonl"
  corpus.write_text('{"_id": "d1", "title": "One", "text": "first doc"}\n'
                    '{"_id": "d2", "title": "", "text": "second doc"}\n')
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(corpus, word_embedder)
  assert [(r["doc_id"], r["text"]) for r in kb.rows] == [("d1", "One\n\nfirst doc"),
                                                        ("d2", "second doc")]
  corpus.write_text('{"_id": "d1", "title": "One", "text": "first doc"}\n{"id": 3}\n')
  with pytest.raises(ValueError, match="line 2"):
    kb.ingest(corpus, word_embedder)


def test_new_chunk_settings_never_drop_sources_from_elsewhere(tmp_path, word_embedder):
  one, two = tmp_path / "one", tmp_path / "two"
  for folder, text in ((one, "Adam uses two betas."), (two, "Rotary embeddings rotate.")):
    folder.mkdir()
    (folder / "a.txt").write_text(text)
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(one, word_embedder, max_tokens=128, log=print)
  kb.ingest(two, word_embedder, max_tokens=128, log=print)
  with pytest.raises(ValueError, match=r"chunks of 1 sources outside .* were made with "
                                       r"max_tokens=128, overlap=32, dim=16; ingest with"):
    kb.ingest(two, word_embedder, log=print)  # the default max_tokens=256
  assert len(store.KnowledgeBase.open(tmp_path / "kb")) == 2


# Every word names its page (w1a is on page 1), so a chunk's pages can be read off its words.
PDF_PAGES = [["w1a w1b w1c.", "w1d w1e."], ["w2a w2b."], ["w3a w3b w3c w3d."]]


def test_pdf_chunks_know_their_pages_and_a_scan_in_the_folder_is_skipped(tmp_path,
                                                                         word_embedder):
  docs = tmp_path / "docs"
  docs.mkdir()
  documents.write_pdf(docs / "paper.pdf", PDF_PAGES)
  documents.write_pdf(docs / "scan.pdf", [None])
  documents.write_docx(docs / "notes.docx", [("heading", "Notes"), ("paragraph", "Plain.")])
  logged = []
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  report = kb.ingest(docs, word_embedder, max_tokens=8, overlap=0, log=logged.append)
  assert sorted(s.rsplit("/", 1)[1] for s in report.added) == ["notes.docx", "paper.pdf"]
  assert logged == [f"skipped {docs / 'scan.pdf'}: no text layer (a scanned PDF?); run OCR "
                    "on it first"]
  rows = [r for r in kb.rows if r["source"].endswith("paper.pdf")]
  assert " ".join(r["text"] for r in rows).split() == " ".join(
      " ".join(lines) for lines in PDF_PAGES).split()
  for row in rows:
    on = [int(w[1]) for w in row["text"].split()]
    assert row["pages"] == [min(on), max(on)], row
  assert [r["pages"] for r in rows] == [[1, 1], [2, 3]]  # page 1 fills a chunk, 2 and 3 share
  assert [store.cite("paper.pdf", r) for r in rows] == ["paper.pdf p. 1", "paper.pdf pp. 2-3"]
  assert "(from paper.pdf pp. 2-3) w2a w2b." in answer.context_block(rows)
  assert [r["text"] for r in kb.rows if r["source"].endswith("notes.docx")] == [
      "Notes\n\nPlain."]
  assert all("pages" not in r for r in kb.rows if not r["source"].endswith(".pdf"))


def test_a_pdf_ingested_before_pages_were_kept_is_read_again(tmp_path, word_embedder):
  docs = tmp_path / "docs"
  docs.mkdir()
  documents.write_pdf(docs / "paper.pdf", PDF_PAGES)
  (docs / "a.txt").write_text("Alpha.")
  kb = store.KnowledgeBase.open(tmp_path / "kb")
  kb.ingest(docs, word_embedder, max_tokens=8, overlap=0)
  paged = list(kb.rows)
  kb._commit(kb.manifest, kb.vectors_NxD,  # pylint: disable=protected-access
             [{k: v for k, v in r.items() if k != "pages"} for r in kb.rows])
  report = store.KnowledgeBase.open(tmp_path / "kb").ingest(docs, word_embedder, max_tokens=8,
                                                           overlap=0)
  assert [Path(s).name for s in report.updated] == ["paper.pdf"]
  assert [Path(s).name for s in report.unchanged] == ["a.txt"]
  assert store.KnowledgeBase.open(tmp_path / "kb").rows == paged
