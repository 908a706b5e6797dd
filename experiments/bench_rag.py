"""RAG benchmarks: speed (1, 2), each side by side in one run, and retrieval quality (3).

  python -m experiments.bench_rag --chunks=100000 --sentences=512
  python -m experiments.bench_rag --what=sweep --docs=DIR/usr/share/doc/git-doc

1. Embedding throughput: our jitted MiniLM against sentence-transformers (torch) on the same
   sentences, batch 32, both warmed up first; sentences/s, median of --repeats.
2. Query latency over --chunks chunks: vectors are random unit vectors (retrieval cost does
   not depend on their values), texts are random 60-word chunks drawn from the fixture's
   vocabulary (so BM25 postings have realistic lengths). Per question: MiniLM embedding of the
   question, BM25 scores, and the jitted cosine matmul + top-k; p50 and p90 over --queries.
3. The retrieval sweep over --docs (a documentation package's HTML pages, the corpus of
   experiments/data/rag_git/): each of --chunkings is ingested into its own knowledge base
   under --work (embedded once; a second run embeds nothing), then every fusion setting of
   research/rag/sweep.py ranks the questions of --qrels over it. The table is the tuning
   half; the best hybrid setting and the best of each part are then shown on the test half.
"""

import json
import random
import statistics
import time
from pathlib import Path

import numpy as np
from absl import flags

from experiments import script
from research import files
from research import runs
from research.rag import embed
from research.rag import evaluate
from research.rag import retrieve
from research.rag import store
from research.rag import sweep

_CHUNKS = flags.DEFINE_integer("chunks", 100_000, "Chunks in the latency benchmark.")
_SENTENCES = flags.DEFINE_integer("sentences", 512, "Sentences in the throughput benchmark.")
_QUERIES = flags.DEFINE_integer("queries", 100, "Questions timed for latency.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Throughput repeats (median reported).")
_WHAT = flags.DEFINE_enum("what", "speed", ["speed", "sweep"], "Which benchmark.")
_DOCS = flags.DEFINE_string("docs", None, "sweep: folder of the documentation's pages.")
_PATTERN = flags.DEFINE_string("pattern", "*.html", "sweep: which files under --docs.")
_QRELS = flags.DEFINE_string("qrels", "experiments/data/rag_git/qrels.tsv",
                             "sweep: BEIR qrels.tsv; queries.jsonl lies beside it.")
_WORK = flags.DEFINE_string("work", "runs/rag_git", "sweep: corpus and knowledge bases.")
_CHUNKINGS = flags.DEFINE_list("chunkings", ["128/0", "128/32", "256/0", "256/32", "256/64",
                                             "512/0", "512/64"],
                               "sweep: max_tokens/overlap of each chunking.")

FIXTURE = Path(__file__).parent / "data" / "rag"
BEFORE = ("512/64", "0.7 bm25 + 0.3 cos, share")  # the defaults before this sweep (RAGFlow)


def _sentences(n: int) -> list[str]:
  rows = [json.loads(line) for line in (FIXTURE / "corpus.jsonl").read_text().splitlines()]
  pieces = [s.strip() + "." for r in rows for s in r["text"].split(".") if s.strip()]
  pieces += [r["text"] for r in rows]  # whole documents: the long end of the lengths
  return [pieces[i % len(pieces)] for i in range(n)]


def _median_rate(fn, texts, repeats):
  fn(texts)  # warm-up: compiles every length bucket / loads torch kernels
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn(texts)
    times.append(time.perf_counter() - start)
  return len(texts) / statistics.median(times)


def throughput(embedder, n: int, repeats: int) -> None:
  texts = _sentences(n)
  ours = _median_rate(embedder.encode, texts, repeats)
  try:
    import torch  # pylint: disable=g-import-not-at-top
    from sentence_transformers import SentenceTransformer  # pylint: disable=g-import-not-at-top
  except ImportError:
    print(f"MiniLM (ours, jax): {ours:.0f} sentences/s; sentence-transformers not installed")
    return
  reference = SentenceTransformer(str(embed.package_dir()), device="cpu")
  encode = lambda t: reference.encode(t, batch_size=embedder.batch_size,
                                      normalize_embeddings=True)
  print(f"embedding {n} sentences, batch {embedder.batch_size}, median of {repeats}:")
  print(f"  ours (jax, jitted, bucketed): {ours:8.0f} sentences/s")
  # On a shared CPU torch's default thread count can oversubscribe the cores and run
  # slower than one thread, so both are measured and the ratio is against the faster.
  best = 0.0
  for threads in sorted({torch.get_num_threads(), 1}, reverse=True):
    torch.set_num_threads(threads)
    theirs = _median_rate(encode, texts, repeats)
    best = max(best, theirs)
    print(f"  sentence-transformers (torch {torch.__version__}, {threads} threads): "
          f"{theirs:8.0f} sentences/s")
  print(f"  ratio ours / faster sentence-transformers: {ours / best:.2f}x")


def latency(embedder, n_chunks: int, n_queries: int) -> None:
  rng = np.random.default_rng(0)
  vocabulary = sorted({w for line in (FIXTURE / "corpus.jsonl").read_text().splitlines()
                       for w in retrieve.words(json.loads(line)["text"])})
  picks = random.Random(0)
  start = time.perf_counter()
  texts = [" ".join(picks.choices(vocabulary, k=60)) for _ in range(n_chunks)]
  vectors_NxD = rng.standard_normal((n_chunks, embedder.dim)).astype(np.float32)
  vectors_NxD /= np.linalg.norm(vectors_NxD, axis=1, keepdims=True)
  retriever = retrieve.Retriever(vectors_NxD, texts, embedder)
  print(f"{n_chunks} chunks indexed (BM25 postings + vectors) in "
        f"{time.perf_counter() - start:.1f} s")
  questions = [json.loads(line)["text"]
               for line in (FIXTURE / "queries.jsonl").read_text().splitlines()]
  retriever.search(questions[0])  # compiles the matmul + top-k once
  parts = {"embed question": [], "bm25": [], "matmul + top-k": [], "total (hybrid search)": []}
  for i in range(n_queries):
    q = questions[i % len(questions)]
    t0 = time.perf_counter()
    query_D = embedder.encode([q])[0]
    t1 = time.perf_counter()
    retriever.bm25.normalized_scores(q)
    t2 = time.perf_counter()
    retriever.rank(q, retrieve.TOP_N, "vector", query_D)
    t3 = time.perf_counter()
    retriever.search(q)
    t4 = time.perf_counter()
    for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
      parts[name].append(seconds * 1e3)
  print(f"query latency over {n_chunks} chunks, {n_queries} questions (ms):")
  for name, values in parts.items():
    print(f"  {name:24s} p50 {np.percentile(values, 50):7.2f}   p90 "
          f"{np.percentile(values, 90):7.2f}")


def _chunking(text: str) -> tuple[int, int]:
  try:
    max_tokens, overlap = (int(v) for v in text.split("/"))
  except ValueError:
    raise ValueError(f"--chunkings: {text!r}: expected max_tokens/overlap, e.g. 256/32.") \
        from None
  return max_tokens, overlap


def _ingest(work: Path, corpus: Path, embedder, max_tokens: int, overlap: int):
  kb = store.KnowledgeBase.open(work / f"kb-{max_tokens}-{overlap}")
  start = time.perf_counter()
  report = kb.ingest(corpus, embedder, max_tokens, overlap, progress=True)
  seconds = time.perf_counter() - start
  changed = set(report.added + report.updated)
  embedded = [r for r in kb.rows if r["source"] in changed]
  rate = (f"{len(embedded) / seconds:.1f} chunks/s, "
          f"{sum(r['tokens'] for r in embedded) / seconds:.0f} tokens/s" if embedded
          else "nothing to embed")
  print(f"{max_tokens}/{overlap}: {len(kb)} chunks, {len(embedded)} embedded in "
        f"{seconds:.0f} s ({rate})", flush=True)
  return kb


def retrieval_sweep(embedder) -> None:
  if not _DOCS.value:
    raise ValueError("--what=sweep needs --docs, the folder of the pages (see "
                     "experiments/data/rag_git/README.md).")
  work, qrels_path = Path(_WORK.value), Path(_QRELS.value)
  chunkings = [_chunking(c) for c in _CHUNKINGS.value]
  corpus = work / "corpus.jsonl"
  pages = evaluate.corpus_of_pages(_DOCS.value, _PATTERN.value)
  evaluate.write_corpus(pages, corpus)  # unchanged pages keep their hashes: no re-embedding
  qrels = evaluate.read_qrels(qrels_path)
  unknown = sorted({d for rel in qrels.values() for d in rel} - {p["_id"] for p in pages})
  if unknown:
    raise ValueError(f"{qrels_path}: judges page {unknown[0]!r}, which {_DOCS.value} lacks.")
  questions = evaluate.judged_questions(
      evaluate.read_queries(qrels_path.parent / "queries.jsonl"), qrels)
  tuning, test = evaluate.halves(qrels)
  print(f"{len(pages)} pages, {len(questions)} questions ({len(tuning)} tuning, "
        f"{len(test)} test)", flush=True)
  vectors_QxD = embedder.encode(list(questions.values()))
  rows = []
  for max_tokens, overlap in chunkings:
    kb = _ingest(work, corpus, embedder, max_tokens, overlap)
    retriever = kb.retriever(embedder)
    start = time.perf_counter()
    for setting in runs.progress(sweep.grid(), desc=f"rank {max_tokens}/{overlap}",
                                 unit="setting"):
      rows += sweep.score(retriever, kb.rows, questions, vectors_QxD, tuning, test,
                          f"{max_tokens}/{overlap}", [setting])
    print(f"  {len(sweep.grid()) * len(questions) / (time.perf_counter() - start):.0f} "
          "questions ranked/s", flush=True)
  report = [f"tuning half ({len(tuning)} questions):", sweep.table(rows, "tuning")]
  best, vector, bm25 = sweep.choose(rows)
  before = [r for r in rows if (r.chunking, r.setting.label) == BEFORE]
  report += ["", f"chosen on the tuning half: {best.chunking} {best.setting.label}; the "
             f"parts at their best: vector {vector.chunking}, bm25 {bm25.chunking}", "",
             f"test half ({len(test)} questions; the old defaults last, if swept):",
             sweep.table([vector, bm25, best] + before, "test"), ""]
  for half in ("tuning", "test"):
    part = sweep.better(vector, bm25, half).setting.label
    report.append(f"hybrid beats the better part on the {half} half ({part}): "
                  f"{sweep.beats_both_parts(best, vector, bm25, half)}")
  report += ["", "every setting on the test half (to read, not to choose by):",
             sweep.table(rows, "test")]
  text = "\n".join(report)
  print(text)
  files.write_text(work / "sweep.md", text + "\n")


def main(argv):
  del argv
  embedder = embed.load_minilm()
  if _WHAT.value == "sweep":
    retrieval_sweep(embedder)
    return
  throughput(embedder, _SENTENCES.value, _REPEATS.value)
  latency(embedder, _CHUNKS.value, _QUERIES.value)


if __name__ == "__main__":
  script.run(main)
