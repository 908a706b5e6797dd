"""Tuning retrieval on a judged question set: every fusion setting ranks over one chunking's
index (embedded once), each setting is chosen on the tuning half of the questions and
reported on the test half, which it never saw.

  tuning, test = evaluate.halves(qrels)
  rows = sweep.score(retriever, kb.rows, questions, vectors_QxD, tuning, test, "256/32")
  best, vector, bm25 = sweep.choose(rows)      # the best hybrid row and the best of each part
  sweep.beats_both_parts(best, vector, bm25, "test")
  print(sweep.table(rows, "tuning"))
"""

import dataclasses

from research.rag import evaluate

KEYWORD_WEIGHTS = (0.3, 0.5, 0.7)
# Settings are ordered by MRR@10 (the rank of the first page that answers, what a reader of
# the top hits feels), then nDCG@10 to break ties.
ORDER_BY = ("MRR@10", "nDCG@10")


@dataclasses.dataclass(frozen=True)
class Setting:
  label: str
  mode: str                                 # retrieve.MODES
  settings: tuple[tuple[str, object], ...]  # Retriever.with_settings keywords


def grid(keyword_weights=KEYWORD_WEIGHTS) -> list[Setting]:
  """The two parts alone, the weighted sum under each normalisation and weight, and RRF."""
  out = [Setting("vector", "vector", ()), Setting("bm25", "bm25", ())]
  for normalization in ("share", "minmax", "zscore"):
    for w in keyword_weights:
      out.append(Setting(f"{w:.1f} bm25 + {1 - w:.1f} cos, {normalization}", "hybrid",
                         (("fusion", "weighted"), ("normalization", normalization),
                          ("keyword_weight", w))))
  out.append(Setting("rrf, k=60", "hybrid", (("fusion", "rrf"),)))
  return out


@dataclasses.dataclass(frozen=True)
class Row:
  chunking: str               # "max_tokens/overlap"
  setting: Setting
  tuning: dict[str, float]    # mean metrics over the tuning half
  test: dict[str, float]      # ... and over the test half


def score(retriever, rows: list[dict], questions: dict[str, str], vectors_QxD, tuning: dict,
          test: dict, chunking: str, settings: list[Setting] | None = None) -> list[Row]:
  """One Row per setting; each question is ranked once per setting, both halves at once."""
  out = []
  for setting in settings or grid():
    fused = retriever.with_settings(**dict(setting.settings))
    runs = evaluate.document_runs(fused, rows, questions, setting.mode, vectors_QxD)
    out.append(Row(chunking, setting, evaluate.mean_metrics(runs, tuning),
                   evaluate.mean_metrics(runs, test)))
  return out


def _key(metrics: dict[str, float]) -> tuple[float, ...]:
  return tuple(metrics[name] for name in ORDER_BY)


def better(row: Row, other: Row, half: str) -> Row:
  """Whichever of the two rows comes first on `half` by ORDER_BY (row on a tie)."""
  return other if _key(getattr(other, half)) > _key(getattr(row, half)) else row


def choose(rows: list[Row]) -> tuple[Row, Row, Row]:
  """The best hybrid row, the best vector row and the best BM25 row, each on the tuning
  half, over every chunking (so each part is compared at its own best chunking)."""
  best = lambda mode: max((r for r in rows if r.setting.mode == mode),
                          key=lambda r: _key(r.tuning))
  return best("hybrid"), best("vector"), best("bm25")


def beats_both_parts(hybrid: Row, vector: Row, bm25: Row, half: str) -> bool:
  """Does the hybrid row come strictly before the better of its two parts on `half`?"""
  return _key(getattr(hybrid, half)) > _key(getattr(better(vector, bm25, half), half))


def table(rows: list[Row], half: str) -> str:
  """Markdown: chunking, setting and the metrics of `half` ("tuning" or "test")."""
  names = list(getattr(rows[0], half))
  lines = ["| chunk tokens / overlap | retrieval | " + " | ".join(names) + " |",
           "|---" * (len(names) + 2) + "|"]
  for r in rows:
    values = getattr(r, half)
    lines.append(f"| {r.chunking} | {r.setting.label} | "
                 + " | ".join(f"{values[n]:.3f}" for n in names) + " |")
  return "\n".join(lines)
