import numpy as np

from research.rag import retrieve
from research.rag import sweep
from tests.rag.conftest import WordEmbedder


def _row(chunking, mode, mrr, ndcg, label=None):
  metrics = {"MRR@10": mrr, "nDCG@10": ndcg}
  return sweep.Row(chunking, sweep.Setting(label or mode, mode, ()), metrics, dict(metrics))


def test_the_grid_has_both_parts_every_weighting_and_rrf():
  settings = sweep.grid()
  assert [s.mode for s in settings[:2]] == ["vector", "bm25"]
  hybrid = [dict(s.settings) for s in settings if s.mode == "hybrid"]
  assert len(hybrid) == 3 * len(sweep.KEYWORD_WEIGHTS) + 1 and {"fusion": "rrf"} in hybrid
  for s in hybrid:  # every setting is one a Retriever accepts
    retrieve.Retriever(np.eye(2, dtype=np.float32), ["a", "b"]).with_settings(**s)


def test_choose_orders_by_mrr_then_ndcg_and_parts_compete_at_their_best_chunking():
  rows = [_row("128/0", "vector", 0.80, 0.70), _row("256/0", "vector", 0.85, 0.60),
          _row("128/0", "bm25", 0.90, 0.80), _row("256/0", "bm25", 0.88, 0.90),
          _row("128/0", "hybrid", 0.90, 0.85, "a"), _row("256/0", "hybrid", 0.90, 0.86, "b")]
  best, vector, bm25 = sweep.choose(rows)
  assert (best.setting.label, vector.chunking, bm25.chunking) == ("b", "256/0", "128/0")
  assert sweep.beats_both_parts(best, vector, bm25, "tuning")
  tie = _row("128/0", "hybrid", 0.90, 0.80)  # equal to BM25: a tie does not beat it
  assert not sweep.beats_both_parts(tie, vector, bm25, "test")


def test_score_gives_each_setting_a_row_with_both_halves():
  texts = ["reset moves the branch head", "stash sets work aside", "rebase replays commits",
           "blame shows who changed a line"]
  rows = [{"doc_id": f"d{i}"} for i in range(len(texts))]
  embedder = WordEmbedder()
  retriever = retrieve.Retriever(embedder.encode(texts), texts, embedder)
  questions = {"q1": "who changed this line", "q2": "move the branch head", "q3": "how does rebase work"}
  qrels = {"q1": {"d3": 2}, "q2": {"d0": 2}, "q3": {"d2": 2}}
  tuning = {q: r for q, r in qrels.items() if q != "q2"}
  out = sweep.score(retriever, rows, questions, embedder.encode(list(questions.values())),
                    tuning, {"q2": qrels["q2"]}, "4/0")
  assert len(out) == len(sweep.grid()) and {r.chunking for r in out} == {"4/0"}
  assert all(r.tuning["MRR@10"] == 1.0 and r.test["MRR@10"] == 1.0 for r in out)
  assert "| 4/0 | rrf, k=60 | 1.000 |" in sweep.table(out, "test")
