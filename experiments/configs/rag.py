"""RAG: MiniLM embeddings, a knowledge base of the BEIR fixture, retrieval measured three ways.

COMMAND: python -m experiments.rag eval --kb=runs/rag/kb --qrels=experiments/data/rag/qrels.tsv
         (after `python -m experiments.rag ingest --kb=runs/rag/kb
                  --docs=experiments/data/rag/corpus.jsonl`)
RESULT:  on the 48-document, 26-question fixture, nDCG@10: vector 0.930, BM25 0.862, hybrid
         0.922 (MRR@10 0.955 / 0.923 / 0.962); ingest and eval ~10 s each on 2 CPUs. The
         tour chapter does the same plus the threshold and re-ingest checks (quick: ~20 s);
         the full chapter also answers one question with SmolLM2-135M-Instruct (~50 s).
"""

import ml_collections

from research import runs
from research.rag import chunk
from research.rag import retrieve


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0                           # the key every random choice derives from
  config.fixture = "experiments/data/rag"   # corpus.jsonl, queries.jsonl, qrels.tsv
  config.docs = "experiments/data/rag/docs"  # real .md / .txt / .html files for the demo
  config.max_tokens = chunk.MAX_TOKENS      # tokens per chunk (256: MiniLM's window)
  config.overlap = chunk.OVERLAP            # tokens adjacent chunks share
  config.keyword_weight = retrieve.KEYWORD_WEIGHT  # hybrid = 0.3 BM25 + 0.7 cosine
  config.fusion = retrieve.FUSION           # weighted sum of the scores, or "rrf"
  config.normalization = retrieve.NORMALIZATION  # weighted: both scores min-max scaled first
  config.threshold = retrieve.THRESHOLD     # chunks whose match is below it are not context
  config.top_n = 6                          # passages given to the model
  config.batch_size = 32                    # texts MiniLM embeds at once
  config.off_topic = ["What is the capital of Australia?",
                      "Give me a recipe for banana bread.",
                      "Who won the football world cup in 1998?",
                      "How tall is Mount Everest?"]  # must score under threshold
  config.answer = not quick                 # loading SmolLM2 costs ~30 s with compiles
  config.model = "smollm2-135m-instruct"    # the model that answers from the passages
  config.question = "What are Adam's default betas and epsilon?"  # asked of the docs
  config.expected = "0.999"                 # what the answer must state (optimizers.md)
  config.max_new_tokens = 48                # the answer's length
  return runs.override(config, options)
