"""RAG: MiniLM embeddings, a knowledge base of the BEIR fixture, retrieval measured three ways.

COMMAND: python -m experiments.rag eval --kb=runs/rag/kb --qrels=experiments/data/rag/qrels.tsv
         (after `python -m experiments.rag ingest --kb=runs/rag/kb
                  --docs=experiments/data/rag/corpus.jsonl`)
RESULT:  on the 48-document, 26-question fixture, nDCG@10: vector 0.930, BM25 0.862, hybrid
         0.928 (MRR@10 0.955 / 0.923 / 0.981); ingest and eval ~10 s each on 2 CPUs. The
         tour chapter does the same plus the threshold and re-ingest checks (quick: ~20 s);
         the full chapter also answers one question with SmolLM2-135M-Instruct (~50 s).
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.fixture = "experiments/data/rag"   # corpus.jsonl, queries.jsonl, qrels.tsv
  config.docs = "experiments/data/rag/docs"  # real .md / .txt / .html files for the demo
  config.max_tokens = 512                   # RAGFlow's default chunk size
  config.overlap = 64
  config.keyword_weight = 0.7               # hybrid = 0.7 BM25 + 0.3 cosine, as RAGFlow
  config.threshold = 0.2
  config.top_n = 6
  config.batch_size = 32
  config.off_topic = ["What is the capital of Australia?",
                      "Give me a recipe for banana bread.",
                      "Who won the football world cup in 1998?",
                      "How tall is Mount Everest?"]
  config.answer = not options.get("quick")  # loading SmolLM2 costs ~30 s with compiles
  config.model = "smollm2-135m-instruct"
  config.question = "What are Adam's default betas and epsilon?"
  config.expected = "0.999"                 # what the answer must state (optimizers.md)
  config.max_new_tokens = 48
  config.update({k: v for k, v in options.items() if k != "quick"})
  return config
