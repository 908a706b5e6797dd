"""A local server for BookForAI's models: Ollama's and OpenAI's HTTP APIs, and a web UI.

  settings.py   what `python -m experiments.serve` is told (model, kb, host, port, limits)
  services.py   the resident model (loaded on use, unloaded after keep_alive), the embedder,
                the knowledge bases, the one generation worker
  app.py        create_app(settings) -> a FastAPI app with every route below
  ollama_api.py /api/chat, /api/generate, /api/embed, /api/tags, /api/ps, /api/version
  models_api.py /api/create, /api/copy, /api/delete, /api/pull on the registry
  registry.py   the models by name: packaged, --model, fine-tune exports, created ones
  openai_api.py /v1/chat/completions, /v1/embeddings, /v1/models
  worker.py     the one generation thread: a bounded queue, streamed pieces, cancel on disconnect
  limits.py     the guard before every route (Host, Origin, key, body size, headers) and the
                one-sentence error bodies
  web.py        the pages at / (chat, knowledge base, fine-tune) and the /ui/ routes they call
  jobs.py       fine-tune jobs from the page: form checks, one background process per run
  static/       index.html, app.css, app.js (no build step, nothing fetched from the internet)
"""
