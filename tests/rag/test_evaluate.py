import math

import numpy as np
import pytest

from research.rag import evaluate
from research.rag import retrieve
from tests.rag.conftest import WordEmbedder

RELEVANT = {"a": 2, "b": 1, "z": 0}


def test_metrics_on_a_hand_computed_ranking():
  ranked = ["x", "b", "y", "a"]
  assert evaluate.recall_at(ranked, RELEVANT, 1) == 0.0
  assert evaluate.recall_at(ranked, RELEVANT, 2) == 0.5
  assert evaluate.recall_at(ranked, RELEVANT, 10) == 1.0
  assert evaluate.mrr_at(ranked, RELEVANT, 10) == 0.5
  assert evaluate.mrr_at(ranked, RELEVANT, 1) == 0.0
  dcg = 1 / math.log2(3) + 2 / math.log2(5)   # b at rank 2, a at rank 4
  idcg = 2 / math.log2(2) + 1 / math.log2(3)  # a, then b
  assert evaluate.ndcg_at(ranked, RELEVANT, 10) == pytest.approx(dcg / idcg)
  assert evaluate.ndcg_at(["a", "b"], RELEVANT, 10) == pytest.approx(1.0)
  assert evaluate.ndcg_at(["z", "x"], RELEVANT, 10) == 0.0


def test_mean_over_queries_counts_missing_runs_as_zero():
  qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
  means = evaluate.mean_metrics({"q1": ["a"]}, qrels)
  assert means["Recall@1"] == 0.5 and means["MRR@10"] == 0.5


def test_readers_name_the_bad_line(tmp_path):
  qrels = tmp_path / "qrels.tsv"
  qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\thigh\n")
  with pytest.raises(ValueError, match="line 3"):
    evaluate.read_qrels(qrels)
  qrels.write_text("q1\td1\t1\n")
  with pytest.raises(ValueError, match="line 1"):
    evaluate.read_qrels(qrels)
  queries = tmp_path / "queries.jsonl"
  queries.write_text('{"_id": "q1", "text": "hi"}\n{"_id": "q2"}\n')
  with pytest.raises(ValueError, match="line 2"):
    evaluate.read_queries(queries)


def test_chunks_of_one_document_count_once():
  class Hit:
    def __init__(self, row):
      self.row = row
  rows = [{"doc_id": "a", "source": "s"}, {"doc_id": "a", "source": "s"}, {"doc_id": "b"}]
  assert evaluate.ranked_documents([Hit(0), Hit(1), Hit(2)], rows) == ["a", "b"]


def test_a_long_document_does_not_crowd_the_others_out_of_the_run():
  # 60 chunks of one page match better than any other page's single chunk: ranking only
  # 4k = 40 chunks deep would find one document, not k = 10
  texts = ["reset reset reset head"] * 60 + [f"reset page {i}" for i in range(12)]
  rows = [{"doc_id": "long"}] * 60 + [{"doc_id": f"p{i}"} for i in range(12)]
  vectors = np.eye(len(texts), 16, dtype=np.float32)
  retriever = retrieve.Retriever(vectors, texts, WordEmbedder())
  docs = evaluate.document_run(retriever, "reset head", rows, "bm25", None, k=10)
  assert docs[0] == "long" and len(docs) == 10 and len(set(docs)) == 10


def test_halves_split_by_the_parity_of_the_id():
  qrels = {f"g{n:03d}": {"a": 1} for n in range(1, 7)}
  tuning, test = evaluate.halves(qrels)
  assert sorted(tuning) == ["g001", "g003", "g005"] and sorted(test) == ["g002", "g004", "g006"]
  with pytest.raises(ValueError, match="'q-a'"):
    evaluate.halves({"q-a": {"a": 1}})


def test_pages_become_a_corpus_named_by_their_paths(tmp_path):
  (tmp_path / "howto").mkdir()
  (tmp_path / "git-reset.html").write_text("<title>reset</title><p>Moves HEAD.</p>")
  (tmp_path / "howto" / "maintain.html").write_text("<p>Be kind.</p>")
  (tmp_path / "git-reset.txt").write_text("the asciidoc source, not a page")
  rows = evaluate.corpus_of_pages(tmp_path)
  assert [r["_id"] for r in rows] == ["git-reset.html", "howto/maintain.html"]
  assert rows[0]["text"] == "reset\n\nMoves HEAD."
  evaluate.write_corpus(rows, tmp_path / "corpus.jsonl")
  assert evaluate.read_queries(tmp_path / "corpus.jsonl")["howto/maintain.html"] == "Be kind."
  with pytest.raises(ValueError, match="no pages"):
    evaluate.corpus_of_pages(tmp_path / "howto", "*.htm")
