"""RAG chapter: a local knowledge base on MiniLM embeddings, its retrieval measured on a
BEIR-format fixture (vector, BM25, hybrid), the threshold that refuses off-topic questions,
incremental re-ingest, and (full mode) an answer from SmolLM2 citing its passages."""

import re
import time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import rag as rag_config
from research import files
from research import tour
from research.rag import answer
from research.rag import embed
from research.rag import evaluate
from research.rag import store


def _figure(results, path):
  names = list(next(iter(results.values())))
  fig, ax = plt.subplots(figsize=(7, 3.4))
  width = 0.8 / len(results)
  for i, (mode, values) in enumerate(results.items()):
    xs = np.arange(len(names)) + (i - (len(results) - 1) / 2) * width
    ax.bar(xs, [values[n] for n in names], width, label=mode)
  ax.set_xticks(np.arange(len(names)), names)
  ax.set_ylim(0, 1.05)
  ax.set_ylabel("mean over questions")
  ax.legend(loc="lower right")
  ax.set_title("Retrieval on the BEIR-format fixture")
  files.save_figure(fig, path)


def _scores_figure(on_topic, off_topic, threshold, path):
  fig, ax = plt.subplots(figsize=(6, 3))
  bins = np.linspace(0, 1, 31)
  ax.hist(on_topic, bins, alpha=0.7, label="fixture questions")
  ax.hist(off_topic, bins, alpha=0.7, label="off-topic questions")
  ax.axvline(threshold, color="k", ls="--", label=f"threshold {threshold}")
  ax.set_xlabel("best match among the top_n hybrid hits")
  ax.legend()
  files.save_figure(fig, path)


REPO = Path(__file__).resolve().parents[2]


def run_experiment(config, out_dir, log=print) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  fixture = REPO / config.fixture  # an absolute config path stays as it is
  start = time.time()
  embedder = embed.load_minilm(batch_size=config.batch_size)
  kb = store.KnowledgeBase.open(out_dir / "kb")
  report = kb.ingest(fixture / "corpus.jsonl", embedder, config.max_tokens, config.overlap)
  log(f"fixture: {report.summary()} ({time.time() - start:.1f} s)")
  retriever = kb.retriever(embedder, keyword_weight=config.keyword_weight,
                           fusion=config.fusion, normalization=config.normalization)
  queries = evaluate.read_queries(fixture / "queries.jsonl")
  qrels = evaluate.read_qrels(fixture / "qrels.tsv")
  results = evaluate.evaluate(retriever, kb.rows, queries, qrels)
  table = evaluate.table(results)
  log("\n" + table)
  files.write_text(out_dir / "retrieval.md", table + "\n")
  _figure(results, out_dir / "retrieval.png")

  best_match = lambda q: max(h.match for h in retriever.rank(q, config.top_n, "hybrid"))
  on_topic = [best_match(q) for q in queries.values()]
  off_topic = [best_match(q) for q in config.off_topic]
  _scores_figure(on_topic, off_topic, config.threshold, out_dir / "threshold.png")
  answered = float(np.mean([s >= config.threshold for s in on_topic]))

  docs_kb = store.KnowledgeBase.open(out_dir / "docs_kb")
  first = docs_kb.ingest(REPO / config.docs, embedder, config.max_tokens, config.overlap)
  counting = _Counting(embedder)
  again = docs_kb.ingest(REPO / config.docs, counting, config.max_tokens, config.overlap)
  log(f"docs: {first.summary()}; again: {again.summary()}, {counting.embedded} embedded")

  ndcg = {mode: values["nDCG@10"] for mode, values in results.items()}
  best_single = max(ndcg["vector"], ndcg["bm25"])
  table_line = lambda name: f"{name} " + ", ".join(
      f"{mode} {values[name]:.3f}" for mode, values in results.items())
  claims = [
      tour.Claim(
          f"hybrid retrieval ({config.keyword_weight} BM25 + "
          f"{1 - config.keyword_weight:.1f} cosine, {config.normalization}) is at least as "
          "good as either alone "
          "on nDCG@10", f"{table_line('nDCG@10')} (hybrid - best single "
          f"{ndcg['hybrid'] - best_single:+.3f}); {table_line('MRR@10')}",
          ndcg["hybrid"] >= best_single, "retrieval.png"),
      tour.Claim(
          "MiniLM embeddings beat BM25 keywords on paraphrased questions",
          f"{table_line('Recall@5')}; vector - BM25 on nDCG@10 "
          f"{ndcg['vector'] - ndcg['bm25']:+.3f}", ndcg["vector"] >= ndcg["bm25"],
          "retrieval.png"),
      tour.Claim.at_most(
          "the 0.2 similarity threshold turns away off-topic questions",
          "best off-topic score", max(off_topic), config.threshold - 1e-9, fmt="{:.3f}",
          figure="threshold.png"),
      tour.Claim.at_least(
          "... and lets the knowledge base's own questions through",
          "share answered", answered, 1.0, fmt="{:.2f}", figure="threshold.png"),
      tour.Claim.at_most(
          "re-ingesting unchanged files embeds nothing", "chunks embedded",
          counting.embedded, 0, fmt="{:d}"),
  ]
  if config.answer:
    claims += _answer_claims(config, docs_kb, embedder, log)
  return claims


class _Counting:
  """Wraps an embedder and counts the texts it embeds."""

  def __init__(self, embedder):
    self.inner, self.embedded, self.dim = embedder, 0, embedder.dim
    self.count_tokens = embedder.count_tokens

  def encode(self, texts, progress=False):
    self.embedded += len(texts)
    return self.inner.encode(texts, progress)


def _answer_claims(config, kb, embedder, log) -> list[tour.Claim]:
  import research  # pylint: disable=g-import-not-at-top
  start = time.time()
  result = answer.ask(lambda: research.load_model(config.model), kb.retriever(embedder),
                      kb.rows, config.question, top_n=config.top_n,
                      threshold=config.threshold, max_new_tokens=config.max_new_tokens)
  text = "".join(result.pieces)
  log(f"Q: {config.question}\nA: {text}\nsources: {result.sources} "
      f"({time.time() - start:.1f} s)")
  cited = {int(n) for n in re.findall(r"\[(\d+)\]", text)}
  valid = cited & {n for n, *_ in result.sources}
  return [
      tour.Claim.at_least(
          f"SmolLM2-135M answers from the retrieved passage (states {config.expected!r})",
          "answer contains it", float(config.expected in text), 1.0, fmt="{:.0f}"),
      tour.Claim.at_least(
          "... and cites a passage it was given as [n]", "valid citations", len(valid), 1,
          fmt="{:d}")]


chapter = tour.experiment_chapter(
    "rag", "RAG: a local knowledge base", 7,
    rag_config.get_config, run_experiment, pass_log=True)
