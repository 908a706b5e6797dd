"""Serve a model over Ollama's and OpenAI's APIs, with the web UI at /.

  python -m experiments.serve                                  # SmolLM2 on 127.0.0.1:11434
  python -m experiments.serve --kb=runs/rag/docs --api_key=secret
  python -m experiments.serve --model=runs/persona/export --port=8000

Then any Ollama or OpenAI client works unchanged (the start-up lines print examples). A
knowledge base answers when a chat request names it as the model, "kb/<name>", or with the
field "kb": "<name>"; its answer carries "sources".
"""

import logging
import threading
from pathlib import Path

from absl import flags

from experiments import script
from research.serve import settings as settings_lib

_MODEL = flags.DEFINE_string("model", settings_lib.DEFAULT_MODEL,
                             "Model source: a packaged name, a .gguf file, an HF directory.")
_KB = flags.DEFINE_string("kb", None, "A knowledge-base folder (experiments/rag.py ingest) "
                          "served as model 'kb/<folder name>'.")
_KB_WRITABLE = flags.DEFINE_bool("kb_writable", False, "Let the web UI upload, delete and "
                                  "ingest in the --kb folder (read-only there by default).")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.")
_PORT = flags.DEFINE_integer("port", 11434, "Port (11434 is Ollama's, so its clients find us).")
_API_KEY = flags.DEFINE_string("api_key", None,
                               "When set, every request needs 'Authorization: Bearer <key>'.")
_WORK_DIR = flags.DEFINE_string("work_dir", "runs/serve",
                                "Knowledge bases, uploads and fine-tune runs made in the UI.")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 512, "Cap on max_tokens / num_predict.")
_WARMUP = flags.DEFINE_bool("warmup", True, "Load and compile before listening, so the "
                            "first request is fast.")


def usage(settings: settings_lib.Settings, kb_names: list[str]) -> str:
  """What to paste to talk to the server."""
  url = f"http://{settings.host}:{settings.port}"
  auth = f" -H 'Authorization: Bearer {settings.api_key}'" if settings.api_key else ""
  key = settings.api_key or "unused"
  model = settings.model
  lines = [
      f"BookForAI serving {model} at {url}  (web UI: {url}/, API docs: {url}/docs)",
      "",
      "  curl" + auth + f" {url}/api/chat -d '{{\"model\": \"{model}\", \"messages\": "
      "[{\"role\": \"user\", \"content\": \"Hello!\"}]}'",
      "  curl" + auth + f" {url}/v1/chat/completions -H 'Content-Type: application/json' -d "
      f"'{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": "
      "\"Hello!\"}]}'",
      f"  OLLAMA_HOST={url}" + (f" OLLAMA_API_KEY={settings.api_key}" if settings.api_key
                               else "") + f" python -c \"import ollama; print(ollama.chat("
      f"model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}]).message.content)\"",
      f"  python -c \"import openai; c = openai.OpenAI(base_url='{url}/v1', api_key='{key}'); "
      f"print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', "
      "'content': 'Hello!'}]).choices[0].message.content)\""]
  for name in kb_names:
    lines.append(f"  knowledge base: model 'kb/{name}' (or \"kb\": \"{name}\"); the answer "
                 "carries \"sources\"")
  return "\n".join(lines)


def main(argv):
  del argv
  import uvicorn  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve import services as services_lib  # pylint: disable=g-import-not-at-top
  from research.serve import worker  # pylint: disable=g-import-not-at-top
  logging.getLogger("absl").setLevel(logging.WARNING)
  settings = settings_lib.Settings(model=_MODEL.value, kb=_KB.value, host=_HOST.value,
                                   port=_PORT.value, api_key=_API_KEY.value,
                                   work_dir=Path(_WORK_DIR.value),
                                   max_new_tokens=_MAX_NEW.value,
                                   kb_writable=_KB_WRITABLE.value)
  services = services_lib.Services(settings)
  if _WARMUP.value:
    print(f"loading {settings.model} ...", flush=True)
    lm = services.lm()
    ids = services.prompt_ids([{"role": "user", "content": "Hi"}])
    warm = worker.generation(lm, ids, worker.Sampling(max_tokens=2), services.budget(len(ids)),
                             threading.Event())
    for _ in warm:  # compiles the prefill and the step for short prompts
      pass
  print(usage(settings, services.kb_names()), flush=True)
  uvicorn.run(app_lib.create_app(settings, services), host=settings.host, port=settings.port,
              log_level="warning")


if __name__ == "__main__":
  script.run(main)
