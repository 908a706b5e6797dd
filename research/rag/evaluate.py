"""Retrieval metrics over a BEIR-format fixture (corpus.jsonl, queries.jsonl, qrels.tsv).

For one query with ranked document ids r_1, r_2, ... and graded relevance rel(d) (0 = not):
  Recall@k = |{relevant} ∩ {r_1..r_k}| / |{relevant}|
  MRR@k    = 1 / (rank of the first relevant r_i, i <= k), else 0
  nDCG@k   = DCG@k / IDCG@k, DCG@k = sum_{i<=k} rel(r_i) / log2(i + 1)   (trec_eval's gain)
"""

import csv
import io
import json
import math
from pathlib import Path

import numpy as np

KS = (1, 5, 10)


def recall_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
  wanted = {d for d, r in relevant.items() if r > 0}
  return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
  for i, d in enumerate(ranked[:k], 1):
    if relevant.get(d, 0) > 0:
      return 1.0 / i
  return 0.0


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int) -> float:
  dcg = sum(relevant.get(d, 0) / math.log2(i + 1) for i, d in enumerate(ranked[:k], 1))
  ideal = sorted((r for r in relevant.values() if r > 0), reverse=True)[:k]
  idcg = sum(r / math.log2(i + 1) for i, r in enumerate(ideal, 1))
  return dcg / idcg if idcg else 0.0


def metrics(ranked: list[str], relevant: dict[str, int]) -> dict[str, float]:
  out = {f"Recall@{k}": recall_at(ranked, relevant, k) for k in KS}
  out["MRR@10"] = mrr_at(ranked, relevant, 10)
  out["nDCG@10"] = ndcg_at(ranked, relevant, 10)
  return out


def mean_metrics(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]):
  """Averages `metrics` over the queries of qrels (a query with no run scores 0)."""
  rows = [metrics(runs.get(q, []), rel) for q, rel in sorted(qrels.items())]
  return {name: float(np.mean([r[name] for r in rows])) for name in rows[0]}


def _utf8(path) -> str:
  try:
    return Path(path).read_bytes().decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: byte {e.start}: not UTF-8 text.") from None


def read_qrels(path) -> dict[str, dict[str, int]]:
  """BEIR qrels.tsv: a header `query-id corpus-id score`, then one row per judgement."""
  qrels: dict[str, dict[str, int]] = {}
  with io.StringIO(_utf8(path), newline="") as f:
    reader = csv.reader(f, delimiter="\t")
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
      raise ValueError(f"{path}: line 1: expected the header query-id, corpus-id, score.")
    for n, row in enumerate(reader, 2):
      if not row:
        continue
      try:
        qrels.setdefault(row[0], {})[row[1]] = int(row[2])
      except (IndexError, ValueError):
        raise ValueError(f"{path}: line {n}: expected query-id, corpus-id, integer score.") \
            from None
  if not qrels:
    raise ValueError(f"{path}: no judgements after the header.")
  return qrels


def read_queries(path) -> dict[str, str]:
  out = {}
  for n, line in enumerate(_utf8(path).splitlines(), 1):
    if line.strip():
      try:
        row = json.loads(line)
        out[str(row["_id"])] = row["text"]
        if not isinstance(row["text"], str):
          raise TypeError
      except (json.JSONDecodeError, KeyError, TypeError):
        raise ValueError(f"{path}: line {n}: expected a JSON object with _id and text.") \
            from None
  return out


def ranked_documents(hits, rows: list[dict], k: int = 10) -> list[str]:
  """Chunk hits -> document ids, each document at the rank of its best chunk."""
  seen = []
  for hit in hits:
    doc = rows[hit.row].get("doc_id") or rows[hit.row]["source"]
    if doc not in seen:
      seen.append(doc)
  return seen[:k]


def evaluate(retriever, rows: list[dict], queries: dict[str, str],
             qrels: dict[str, dict[str, int]], modes=("vector", "bm25", "hybrid"),
             k: int = 10) -> dict[str, dict[str, float]]:
  """{mode: mean metrics} over the judged queries; queries are embedded in one batch."""
  judged = [q for q in sorted(qrels) if q in queries]
  missing = sorted(set(qrels) - set(queries))
  if missing:
    raise ValueError(f"qrels names query {missing[0]!r}, which queries.jsonl lacks.")
  vectors_QxD = retriever.embedder.encode([queries[q] for q in judged])
  depth = min(len(retriever), 4 * k)  # documents may have several chunks
  out = {}
  for mode in modes:
    runs = {q: ranked_documents(retriever.rank(queries[q], depth, mode, v), rows, k)
            for q, v in zip(judged, vectors_QxD)}
    out[mode] = mean_metrics(runs, qrels)
  return out


def table(results: dict[str, dict[str, float]]) -> str:
  names = list(next(iter(results.values())))
  lines = ["| retrieval | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for mode, values in results.items():
    lines.append(f"| {mode} | " + " | ".join(f"{values[n]:.3f}" for n in names) + " |")
  return "\n".join(lines)
