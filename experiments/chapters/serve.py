"""Deployment chapter: the model behind an Ollama/OpenAI-compatible HTTP server, measured
from the client's side of the socket with nothing but the standard library."""

import concurrent.futures
import json
import time
import urllib.request
from pathlib import Path

import jax
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from experiments.configs import serve as serve_config
from research import files
from research import pretrained
from research import tour
from research.generate import stream
from research.serve import app as app_lib
from research.serve import launch
from research.serve import services as services_lib
from research.serve import settings as settings_lib

REPO = Path(__file__).resolve().parents[2]
START_COMMAND = "python -m experiments.serve   # then http://127.0.0.1:11434/ (web UI, Ollama and OpenAI APIs)"


def _post(url: str, body: dict):
  request = urllib.request.Request(url, json.dumps(body).encode(),
                                   {"Content-Type": "application/json"})
  return urllib.request.urlopen(request, timeout=600)


def _stream_chat(url: str, body: dict) -> tuple[list[float], str, dict]:
  """Ollama's NDJSON stream: the arrival time of each piece (s after sending), the text and
  the final object."""
  start = time.perf_counter()
  times, pieces, final = [], [], {}
  with _post(url + "/api/chat", dict(body, stream=True)) as response:
    for line in response:
      message = json.loads(line)
      if message.get("done"):
        final = message
        break
      piece = message["message"]["content"]
      if piece:
        times.append(time.perf_counter() - start)
        pieces.append(piece)
  return times, "".join(pieces), final


def _library_answer(lm, messages, max_tokens: int) -> str:
  """What experiments/chat.py prints for --temperature 0, computed in process."""
  tok = lm.tokenizer
  prompt = tok.encode(tok.apply_chat_template(messages, add_generation_prompt=True))
  ids = stream.stream(lm.model, prompt, max_tokens, jax.random.key(0), temperature=0.0,
                      eos_id=tok.eos_id)
  return "".join(stream.stream_text(tok, ids)).strip()


def _figure(single: list[float], concurrent: list[list[float]], path):
  fig, ax = plt.subplots(figsize=(7, 3.4))
  ax.step(single, np.arange(1, len(single) + 1), where="post", lw=2, label="1 client")
  for i, times in enumerate(concurrent):
    ax.step(times, np.arange(1, len(times) + 1), where="post", alpha=0.7,
            label=f"{len(concurrent)} clients" if i == 0 else None, color="tab:orange")
  ax.set_xlabel("seconds after the request")
  ax.set_ylabel("text pieces received")
  ax.set_title("Streaming through /api/chat")
  ax.legend()
  files.save_figure(fig, path)


def run_experiment(config, out_dir, log=print) -> list[tour.Claim]:
  out_dir = Path(out_dir)
  lm = pretrained.load_model(config.model)
  settings = settings_lib.Settings(model=config.model, work_dir=out_dir / "server",
                                   max_new_tokens=max(config.max_tokens, 64))
  services = services_lib.Services(settings, lm=lm)
  messages = [{"role": "user", "content": config.prompt}]
  greedy = {"model": config.model, "messages": messages,
            "options": {"temperature": 0, "num_predict": config.max_tokens}}
  claims = []
  with launch.ServerThread(app_lib.create_app(settings, services)) as server:
    log(f"server on {server.url}; start one yourself with: {START_COMMAND}")
    _stream_chat(server.url, greedy)  # the first request compiles the decode step
    single, streamed, final = _stream_chat(server.url, greedy)
    with _post(server.url + "/v1/chat/completions",
               {"model": config.model, "messages": messages, "temperature": 0,
                "max_tokens": config.max_tokens}) as response:
      openai_text = json.load(response)["choices"][0]["message"]["content"]
    library = _library_answer(lm, messages, config.max_tokens)
    log(f"greedy answer: {library!r}")

    def sampled(i):
      body = dict(greedy, options={"temperature": 0.7, "seed": i, "num_predict": config.max_tokens})
      return _stream_chat(server.url, body)

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(config.concurrent_clients) as pool:
      results = list(pool.map(sampled, range(config.concurrent_clients)))
    wall = time.perf_counter() - start
    completed = sum(bool(r[2].get("done")) for r in results)
    tokens = sum(r[2].get("eval_count", 0) for r in results)
    log(f"{config.concurrent_clients} concurrent clients: {completed} completed, "
        f"{tokens / wall:.1f} tokens/s in all; 1 client: "
        f"{final.get('eval_count', 0) / single[-1]:.1f} tokens/s, first piece {single[0]:.2f} s")
    _figure(single, [r[0] for r in results], out_dir / "streaming.png")

    claims += [
        tour.Claim("a local server answers like the library: greedy text through Ollama's "
                   "/api/chat and OpenAI's /v1/chat/completions equals the in-process answer",
                   f"{len(library)} characters; ollama {'equal' if streamed.strip() == library else 'differs'}, "
                   f"openai {'equal' if openai_text.strip() == library else 'differs'}",
                   streamed.strip() == library and openai_text.strip() == library),
        tour.Claim.at_most("streaming shows the answer as it is written: the first piece arrives "
                           "before half the whole answer's time", "first piece / last piece",
                           single[0] / single[-1], 0.5, fmt="{:.3f}", figure="streaming.png"),
        tour.Claim.at_least(f"one worker serialises generation, yet {config.concurrent_clients} "
                            "concurrent streaming clients all complete", "completed",
                            completed, config.concurrent_clients, fmt="{:d}",
                            figure="streaming.png"),
    ]
    if config.kb_docs:
      claims.append(_kb_claim(config, services, server.url, log))
  return claims


def _kb_claim(config, services, url, log) -> tour.Claim:
  from research.rag import store  # pylint: disable=g-import-not-at-top
  kb = store.KnowledgeBase.open(services.kb_dir("notebook"))
  log(f"knowledge base: {kb.ingest(REPO / config.kb_docs, services.embedder()).summary()}")
  body = {"model": config.model, "kb": "notebook", "stream": False,
          "messages": [{"role": "user", "content": config.kb_question}],
          "options": {"temperature": 0, "num_predict": config.max_tokens}}
  with _post(url + "/api/chat", body) as response:
    answer = json.load(response)
  sources = answer.get("sources", [])
  log(f"{config.kb_question!r} -> {answer['message']['content']!r}; sources: "
      + ", ".join(f"[{s['n']}] {Path(s['source']).name}" for s in sources))
  return tour.Claim.at_least(
      "a knowledge-base question through the chat API comes back with its cited sources",
      "sources", len(sources), 1, fmt="{:d}")


chapter = tour.experiment_chapter(
    "serve", "Deployment: a local Ollama/OpenAI-compatible server", 9,
    serve_config.get_config, run_experiment, pass_log=True)
