"""The deployment chapter: the packaged SmolLM2 behind the Ollama/OpenAI-compatible server,
talked to over HTTP like any client would.

COMMAND: python -m experiments.tour --only=serve      (the server itself: python -m experiments.serve)
RESULT:  the server's greedy answer equals the library's; the first streamed token arrives
         long before the last; 4 concurrent streams all complete; (full mode) a knowledge-base
         question comes back with cited sources.
Presets: `serve.py:quick` (shorter answers, no knowledge base).
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0                          # the sampling key of the streamed answers
  config.model = "smollm2-135m-instruct"   # what the server serves
  config.prompt = "Explain in two sentences why the sky is blue."  # asked over HTTP
  config.max_tokens = 32 if quick else 64  # the answer's length
  config.concurrent_clients = 4            # streams opened at once
  config.kb_docs = "" if quick else "experiments/data/rag/docs"  # "": no knowledge base
  config.kb_question = "What are Adam's default betas and epsilon?"  # asked of the kb
  return runs.override(config, options)
