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

from research import files
from research.rag import extract

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


def corpus_of_pages(folder, pattern: str = "*.html") -> list[dict]:
  """The pages under `folder` matching `pattern` as BEIR corpus rows, each page's id its path
  relative to the folder ("git-reset.html", "howto/maintain-git.html"): a documentation
  package turned into a corpus that qrels can name. ValueError if a page has no text."""
  folder = Path(folder)
  rows = []
  for path in sorted(folder.rglob(pattern)):
    document, why = extract.extract(path)
    if document is None:
      raise ValueError(f"{path}: {why}.")
    rows.append({"_id": path.relative_to(folder).as_posix(), "title": "",
                 "text": document.text})
  if not rows:
    raise ValueError(f"{folder}: no pages matching {pattern}.")
  return rows


def write_corpus(rows: list[dict], path) -> None:
  files.write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def ranked_documents(hits, rows: list[dict], k: int = 10) -> list[str]:
  """Chunk hits -> document ids, each document at the rank of its best chunk."""
  seen = []
  for hit in hits:
    doc = rows[hit.row].get("doc_id") or rows[hit.row]["source"]
    if doc not in seen:
      seen.append(doc)
  return seen[:k]


def document_run(retriever, query: str, rows: list[dict], mode: str, query_D,
                 k: int = 10) -> list[str]:
  """The k best documents for a query, each at the rank of its best chunk. Chunks are
  ranked 4k deep, then 4 times deeper until k documents appear: one long page can fill the
  first chunks on its own."""
  depth = 4 * k
  while True:
    docs = ranked_documents(retriever.rank(query, depth, mode, query_D), rows, k)
    if len(docs) == k or depth >= len(retriever):
      return docs
    depth *= 4


def document_runs(retriever, rows: list[dict], questions: dict[str, str], mode: str,
                  vectors_QxD, k: int = 10) -> dict[str, list[str]]:
  """{query id: its k best documents}; vectors_QxD has one row per question, in order."""
  return {q: document_run(retriever, text, rows, mode, v, k)
          for (q, text), v in zip(questions.items(), vectors_QxD)}


def judged_questions(queries: dict[str, str], qrels) -> dict[str, str]:
  """The questions qrels judges, in id order; ValueError if qrels names one queries lacks."""
  missing = sorted(set(qrels) - set(queries))
  if missing:
    raise ValueError(f"qrels names query {missing[0]!r}, which queries.jsonl lacks.")
  return {q: queries[q] for q in sorted(qrels)}


def evaluate(retriever, rows: list[dict], queries: dict[str, str],
             qrels: dict[str, dict[str, int]], modes=("vector", "bm25", "hybrid"),
             k: int = 10) -> dict[str, dict[str, float]]:
  """{mode: mean metrics} over the judged queries; queries are embedded in one batch."""
  questions = judged_questions(queries, qrels)
  vectors_QxD = retriever.embedder.encode(list(questions.values()))
  return {mode: mean_metrics(document_runs(retriever, rows, questions, mode, vectors_QxD, k),
                             qrels)
          for mode in modes}


def halves(qrels: dict[str, dict[str, int]]) -> tuple[dict, dict]:
  """(tuning, test) by the last digit of each query id: odd tunes (g001), even tests (g002),
  so a setting chosen on one half is reported on questions it was not chosen on."""
  bad = [q for q in qrels if not q[-1:].isdigit()]
  if bad:
    raise ValueError(f"query id {bad[0]!r}: expected an id ending in a digit, whose parity "
                     "picks the tuning or the test half.")
  tuning = {q: r for q, r in qrels.items() if int(q[-1]) % 2}
  return tuning, {q: r for q, r in qrels.items() if q not in tuning}


def table(results: dict[str, dict[str, float]]) -> str:
  names = list(next(iter(results.values())))
  lines = ["| retrieval | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
  for mode, values in results.items():
    lines.append(f"| {mode} | " + " | ".join(f"{values[n]:.3f}" for n in names) + " |")
  return "\n".join(lines)
