import math

import pytest

from research.rag import evaluate

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
