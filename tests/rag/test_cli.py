"""The RAG script end to end on the demo folder and the BEIR fixture (absl flags are
global, so each command runs in a subprocess), and the tour chapter in quick mode."""

import subprocess
import sys
from pathlib import Path

import pytest

from research.rag import store
from tests.rag import documents

REPO = Path(__file__).resolve().parents[2]


def _rag(*args):
  proc = subprocess.run([sys.executable, "-m", "experiments.rag", *map(str, args)], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)
  return proc


@pytest.mark.slow
def test_ingest_ask_eval_from_the_command_line(tmp_path):
  docs = tmp_path / "docs"
  docs.mkdir()
  for path in (REPO / "experiments/data/rag/docs").iterdir():
    (docs / path.name).write_bytes(path.read_bytes())
  (docs / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
  documents.write_pdf(docs / "lion.pdf", [["Lion keeps one moving average."],
                                          ["It steps by the sign of the update."]])
  documents.write_pdf(docs / "scan.pdf", [None])
  documents.write_docx(docs / "sgd.docx", [("heading", "SGD"), ("paragraph", "No state.")])
  proc = _rag("ingest", f"--kb={tmp_path / 'kb'}", f"--docs={docs}")
  assert proc.returncode == 0, proc.stderr
  assert "5 added" in proc.stdout and "2 skipped" in proc.stdout
  assert "logo.png" in proc.stderr
  assert "scan.pdf: no text layer (a scanned PDF?); run OCR on it first" in proc.stderr
  rows = {Path(r["source"]).name: r for r in store.KnowledgeBase.open(tmp_path / "kb").rows}
  assert rows["lion.pdf"]["pages"] == [1, 2] and rows["sgd.docx"]["text"] == "SGD\n\nNo state."
  proc = _rag("ask", f"--kb={tmp_path / 'kb'}", "Who won the football world cup in 1998?")
  assert proc.returncode == 0, proc.stderr
  assert "The knowledge base has no answer" in proc.stdout and "sources:" not in proc.stdout

  fixture = REPO / "experiments/data/rag"
  proc = _rag("ingest", f"--kb={tmp_path / 'beir'}", f"--docs={fixture / 'corpus.jsonl'}")
  assert proc.returncode == 0 and "48 added" in proc.stdout, proc.stderr
  proc = _rag("eval", f"--kb={tmp_path / 'beir'}", f"--qrels={fixture / 'qrels.tsv'}")
  assert proc.returncode == 0, proc.stderr
  for mode in ("vector", "bm25", "hybrid"):
    assert f"| {mode} |" in proc.stdout
  assert "nDCG@10" in proc.stdout


def test_bad_commands_are_refused():
  proc = _rag("serve")
  assert proc.returncode != 0 and "expected a command" in proc.stderr


@pytest.mark.slow
def test_tour_chapter_quick(tmp_path):
  from experiments.chapters import rag as rag_chapter  # pylint: disable=g-import-not-at-top
  from research import tour  # pylint: disable=g-import-not-at-top
  claims = rag_chapter.chapter(tour.Context(tmp_path, quick=True))
  assert len(claims) == 5
  assert (tmp_path / "retrieval.png").exists() and (tmp_path / "threshold.png").exists()
  assert "| hybrid |" in (tmp_path / "retrieval.md").read_text()
  by_statement = {c.statement: c for c in claims}
  assert by_statement["re-ingesting unchanged files embeds nothing"].holds
  assert by_statement["the 0.2 similarity threshold turns away off-topic questions"].holds
