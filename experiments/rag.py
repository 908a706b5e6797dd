"""A local knowledge base from the command line.

  python -m experiments.rag ingest --kb=runs/rag/docs --docs=experiments/data/rag/docs
  python -m experiments.rag ask --kb=runs/rag/docs "What are Adam's default betas?"
  python -m experiments.rag ingest --kb=runs/rag/kb --docs=experiments/data/rag/corpus.jsonl
  python -m experiments.rag eval --kb=runs/rag/kb --qrels=experiments/data/rag/qrels.tsv

`ingest` takes a folder (.txt, .md, .html, .pdf with a text layer, .docx), one file, or a BEIR
corpus.jsonl; re-running it embeds only what changed. `ask` streams the answer and lists the
cited sources, a PDF's with its pages ("paper.pdf p. 3").
`eval` needs a store built from a BEIR corpus; queries come from --queries, by default the
queries.jsonl beside the qrels.
"""

import logging
import sys
import time
from pathlib import Path

from absl import app
from absl import flags

from experiments import script
from research.rag import chunk
from research.rag import retrieve

_KB = flags.DEFINE_string("kb", None, "Knowledge base folder.")
_DOCS = flags.DEFINE_string("docs", None, "ingest: folder, file or BEIR corpus.jsonl.")
_QRELS = flags.DEFINE_string("qrels", None, "eval: BEIR qrels.tsv.")
_QUERIES = flags.DEFINE_string("queries", None, "eval: queries.jsonl (default: beside qrels).")
_MODE = flags.DEFINE_enum("mode", "hybrid", list(retrieve.MODES), "ask: retrieval mode.")
_TOP_N = flags.DEFINE_integer("top_n", retrieve.TOP_N, "ask: chunks in the prompt.")
_THRESHOLD = flags.DEFINE_float("threshold", retrieve.THRESHOLD, "ask: least chunk score.")
_KEYWORD_WEIGHT = flags.DEFINE_float("keyword_weight", retrieve.KEYWORD_WEIGHT,
                                     "Hybrid: weight of BM25; cosine gets the rest.")
_FUSION = flags.DEFINE_enum("fusion", retrieve.FUSION, list(retrieve.FUSIONS),
                            "Hybrid: weighted sum of the scores, or reciprocal-rank fusion.")
_NORMALIZATION = flags.DEFINE_enum("normalization", retrieve.NORMALIZATION,
                                   list(retrieve.NORMALIZATIONS),
                                   "Hybrid, weighted: how both scores are scaled first.")
_MAX_TOKENS = flags.DEFINE_integer("max_tokens", chunk.MAX_TOKENS,
                                   "ingest: most tokens per chunk.")
_OVERLAP = flags.DEFINE_integer("overlap", chunk.OVERLAP,
                                "ingest: tokens shared by adjacent chunks.")
_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "ask: chat model source.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 128, "ask: longest answer in tokens.")

COMMANDS = ("ingest", "ask", "eval")


def _need(flag, command):
  if flag.value is None:
    raise app.UsageError(f"{command} needs --{flag.name}.")
  return flag.value


def ingest(embedder):
  from research.rag import store  # pylint: disable=g-import-not-at-top
  kb = store.KnowledgeBase.open(_need(_KB, "ingest"))
  start = time.time()
  report = kb.ingest(_need(_DOCS, "ingest"), embedder, _MAX_TOKENS.value, _OVERLAP.value,
                     log=lambda m: print(f"warning: {m}", file=sys.stderr), progress=True)
  print(f"{report.summary()} ({time.time() - start:.1f} s) -> {kb.dir}")


def ask(embedder, question: str):
  import research  # pylint: disable=g-import-not-at-top
  from research.rag import answer  # pylint: disable=g-import-not-at-top
  from research.rag import store  # pylint: disable=g-import-not-at-top
  kb = store.KnowledgeBase.open(_need(_KB, "ask"))
  if not len(kb):
    raise app.UsageError(f"{kb.dir}: the knowledge base is empty; run ingest first.")
  result = answer.ask(lambda: research.load_model(_MODEL.value),
                      _retriever(kb, embedder), kb.rows, question,
                      mode=_MODE.value, top_n=_TOP_N.value, threshold=_THRESHOLD.value,
                      max_new_tokens=_MAX_NEW.value)
  for piece in result.pieces:
    sys.stdout.write(piece)
    sys.stdout.flush()
  sys.stdout.write("\n")
  if result.sources:
    print("sources:")
    for (n, source, index), hit in zip(result.sources, result.hits):
      print(f"  [{n}] {store.cite(_short(source), kb.rows[hit.row])} chunk {index} "
            f"(score {hit.score:.3f}, match {hit.match:.3f}: cosine {hit.vector:.3f}, "
            f"keyword {hit.keyword:.3f})")


def _retriever(kb, embedder):
  return kb.retriever(embedder, keyword_weight=_KEYWORD_WEIGHT.value, fusion=_FUSION.value,
                      normalization=_NORMALIZATION.value)


def _short(source: str) -> str:
  try:
    return str(Path(source).relative_to(Path.cwd()))
  except ValueError:
    return source


def evaluate_kb(embedder):
  from research.rag import evaluate  # pylint: disable=g-import-not-at-top
  from research.rag import store  # pylint: disable=g-import-not-at-top
  kb = store.KnowledgeBase.open(_need(_KB, "eval"))
  if not kb.rows or "doc_id" not in kb.rows[0]:
    raise app.UsageError(f"{kb.dir}: eval needs a store built from a BEIR corpus.jsonl "
                         "(ingest --docs=.../corpus.jsonl).")
  qrels_path = Path(_need(_QRELS, "eval"))
  queries = evaluate.read_queries(_QUERIES.value or qrels_path.parent / "queries.jsonl")
  qrels = evaluate.read_qrels(qrels_path)
  results = evaluate.evaluate(_retriever(kb, embedder), kb.rows,
                              queries, qrels)
  print(f"{len(qrels)} questions, {len(kb)} chunks")
  print(evaluate.table(results))


def main(argv):
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"expected a command: one of {', '.join(COMMANDS)}.")
  command, rest = argv[1], argv[2:]
  if command == "ask" and not rest:
    raise app.UsageError('ask needs a question: ask --kb=DIR "question"')
  if command != "ask" and rest:
    raise app.UsageError(f"{command} takes no positional arguments, got {rest}.")
  logging.getLogger("absl").setLevel(logging.WARNING)
  from research.rag import embed  # pylint: disable=g-import-not-at-top
  embedder = embed.load_minilm()
  if command == "ingest":
    ingest(embedder)
  elif command == "ask":
    ask(embedder, " ".join(rest))
  else:
    evaluate_kb(embedder)


if __name__ == "__main__":
  script.run(main)
