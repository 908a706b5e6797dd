"""Serve a model over Ollama's and OpenAI's APIs, with the web UI at /.

  python -m experiments.serve                                  # SmolLM2 on 127.0.0.1:11434
  BOOKFORAI_API_KEY=secret python -m experiments.serve --kb=runs/rag/docs
  python -m experiments.serve --model=runs/persona/export --port=8000
  python -m experiments.serve --adapter=runs/persona          # SmolLM2 + a LoRA run's adapter
  python -m experiments.serve --host=0.0.0.0 --api_key_file=~/.bookforai-key   # on the network

Then any Ollama or OpenAI client works unchanged (the start-up lines print examples). A
knowledge base answers when a chat request names it as the model, "kb/<name>", or with the
field "kb": "<name>"; its answer carries "sources".

What is open by default, and how to open more, is research/serve/limits.py's docstring: the
Host must name this server (--allowed_hosts adds names a proxy sends), a browser page must be
the server's own (--origins adds others), and a non-loopback --host needs a key.
"""

import logging
import os
import threading
from pathlib import Path

from absl import flags

from experiments import script
from research.serve import settings as settings_lib

_MODEL = flags.DEFINE_string("model", settings_lib.DEFAULT_MODEL,
                             "Model source: a packaged name, a .gguf file, an HF directory.")
_ADAPTER = flags.DEFINE_string("adapter", None, "A PEFT LoRA adapter folder (ours or peft's) "
                               "put on --model, as LLaMA-Factory's adapter_name_or_path.")
_QUANTIZED = flags.DEFINE_bool("quantized", True, "Keep a GGUF's Q8_0 / Q4_1 weights in their "
                                "blocks (fast); false: dequantize them to float32.")
_KB = flags.DEFINE_string("kb", None, "A knowledge-base folder (experiments/rag.py ingest) "
                          "served as model 'kb/<folder name>'.")
_KB_WRITABLE = flags.DEFINE_bool("kb_writable", False, "Let the web UI upload, delete and "
                                  "ingest in the --kb folder (read-only there by default).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
_PORT = flags.DEFINE_integer("port", 11434, "Port (11434 is Ollama's, so its clients find us).")
_API_KEY = flags.DEFINE_string(
    "api_key", None, "When set, every request needs 'Authorization: Bearer <key>'. A flag "
    f"shows in `ps`: prefer --api_key_file or ${settings_lib.KEY_ENV}.")
_API_KEY_FILE = flags.DEFINE_string("api_key_file", None,
                                    "A file whose first line is the API key.")
_INSECURE_NO_KEY = flags.DEFINE_bool(
    "insecure_no_key", False, "Serve a non-loopback --host without an API key: anyone who "
    "can connect may use the model, the knowledge bases and the fine-tune jobs.")
_ALLOWED_HOSTS = flags.DEFINE_list(
    "allowed_hosts", [], "Host names to answer beyond loopback and --host, e.g. the name a "
    "reverse proxy sends; '*.example.com' or '*' (any: no DNS-rebinding protection).")
_ORIGINS = flags.DEFINE_list(
    "origins", [], "Browser origins allowed to call the server (with CORS headers) beyond its "
    "own pages, e.g. http://localhost:3000; '*' stands for a host or a port, or alone for any.")
_DOCS = flags.DEFINE_bool("docs", False, "Serve /docs, /redoc and /openapi.json (behind the "
                          "key; Swagger UI and ReDoc load from their CDN).")
_WORK_DIR = flags.DEFINE_string("work_dir", "runs/serve",
                                "Knowledge bases, uploads and fine-tune runs made in the UI.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 512, "Cap on max_tokens / num_predict.")
_WARMUP = flags.DEFINE_bool("warmup", True, "Load and compile before listening, so the "
                            "first request is fast.")


def main(argv):
  del argv
  import uvicorn  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve import launch  # pylint: disable=g-import-not-at-top
  from research.serve import services as services_lib  # pylint: disable=g-import-not-at-top
  from research.serve import worker  # pylint: disable=g-import-not-at-top
  logging.getLogger("absl").setLevel(logging.WARNING)
  settings = settings_lib.Settings(
      model=_MODEL.value, adapter=_ADAPTER.value, quantized=_QUANTIZED.value, kb=_KB.value,
      kb_writable=_KB_WRITABLE.value, host=_HOST.value, port=_PORT.value,
      api_key=settings_lib.api_key_from(_API_KEY.value, _API_KEY_FILE.value, os.environ),
      insecure_no_key=_INSECURE_NO_KEY.value, allowed_hosts=tuple(_ALLOWED_HOSTS.value),
      origins=tuple(_ORIGINS.value), docs=_DOCS.value, work_dir=Path(_WORK_DIR.value),
      max_new_tokens=_MAX_NEW.value).check()
  services = services_lib.Services(settings)
  if _WARMUP.value:
    print(f"loading {settings.model} ...", flush=True)
    lm = services.lm()
    ids = services.prompt_ids([{"role": "user", "content": "Hi"}])
    warm = worker.generation(lm, ids, worker.Sampling(max_tokens=2), services.budget(len(ids)),
                             threading.Event())
    for _ in warm:  # compiles the prefill and the step for short prompts
      pass
  print(launch.usage(settings, services.kb_names()), flush=True)
  uvicorn.run(app_lib.create_app(settings, services), host=settings.host, port=settings.port,
              log_level="warning")


if __name__ == "__main__":
  script.run(main)
