"""The local server under load, through the real clients (openai, ollama):

  python -m experiments.bench_serve                   # SmolLM2, 5-minute mixed run
  python -m experiments.bench_serve --minutes=1 --rounds=3

The server is `python -m experiments.serve` in a subprocess on a free port (warmed up before
it listens). Then, with greedy decoding of --tokens tokens per answer (ignore_eos is not an
API option, so prompts ask for long answers and the counts come from the usage fields):

1. One streaming client, --rounds times: time to first token (TTFT), and tokens/s of the
   whole request (completion tokens / request time) and of decoding alone (after the first
   token); alternating with each round, the same greedy answer without the server
   (research.generate.stream in this process, the server idle): the server's overhead.
2. --clients concurrent streaming clients, --rounds times: the total tokens/s (all tokens /
   wall time of the batch) and each client's TTFT, which includes its wait in the queue.
3. A mixed run of --minutes: --clients threads loop chat (ollama and openai, streamed and
   not) and embedding (ollama and openai) requests until time is up; requests sent,
   completed and lost (an error or an answer without its final object).
Medians throughout; the load average is printed at the start and the end.
"""

import collections
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from absl import flags

from experiments import script
from research.serve import launch

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct", "Model the server loads.")
_TOKENS = flags.DEFINE_integer("tokens", 64, "max_tokens of each chat request.")
_CLIENTS = flags.DEFINE_integer("clients", 4, "Concurrent clients in parts 2 and 3.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Repeats of parts 1 and 2 (medians reported).")
_MINUTES = flags.DEFINE_float("minutes", 5.0, "Length of the mixed run (part 3).")
_OUT = flags.DEFINE_string("out", "runs/bench_serve/results.json", "Where the figures go.")

PROMPTS = ["Write a long story about a dragon who learns to cook.",
           "Explain in detail how a bicycle works, part by part.",
           "Describe a walk through a busy market, with every sound and smell.",
           "List many tips for learning a new language, and explain each one."]
TEXTS = ["Adam keeps running averages of the gradient and its square.",
         "Rotary embeddings rotate query and key pairs by position.",
         "A knowledge base answers from retrieved passages."]
KEY = "bench"


def start_server(model: str, port: int) -> subprocess.Popen:
  import httpx  # pylint: disable=g-import-not-at-top
  proc = subprocess.Popen([sys.executable, "-m", "experiments.serve", f"--model={model}",
                           f"--port={port}", f"--api_key={KEY}",
                           f"--max_new_tokens={max(_TOKENS.value, 64)}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 600
  while time.time() < deadline:
    if proc.poll() is not None:
      raise RuntimeError(f"the server exited: {proc.stderr.read()[-2000:]}")
    try:
      httpx.get(f"http://127.0.0.1:{port}/api/version", headers={"Authorization": f"Bearer {KEY}"},
                timeout=2)
      return proc
    except httpx.HTTPError:
      time.sleep(0.5)
  proc.kill()
  raise RuntimeError("the server did not start within 10 minutes")


def stream_chat(client, model: str, prompt: str, tokens: int) -> dict:
  """One streamed OpenAI chat: its TTFT, time, and completion tokens (from usage)."""
  start = time.perf_counter()
  first, usage = None, None
  for chunk in client.chat.completions.create(
      model=model, messages=[{"role": "user", "content": prompt}], temperature=0,
      max_tokens=tokens, stream=True, stream_options={"include_usage": True}):
    if chunk.choices and chunk.choices[0].delta.content and first is None:
      first = time.perf_counter()
    if chunk.usage is not None:
      usage = chunk.usage
  end = time.perf_counter()
  first = first or end
  return {"ttft": first - start, "seconds": end - start, "decode_s": end - first,
          "tokens": usage.completion_tokens}


def _summary(runs: list[dict]) -> dict:
  return {"ttft_s": statistics.median(r["ttft"] for r in runs),
          "tokens_per_s": statistics.median(r["tokens"] / r["seconds"] for r in runs),
          "decode_tokens_per_s": statistics.median((r["tokens"] - 1) / r["decode_s"]
                                                   for r in runs if r["tokens"] > 1),
          "tokens": statistics.median(r["tokens"] for r in runs)}


def direct_runner(model: str, tokens: int):
  """One greedy answer by research.generate.stream in this process, the prompt built and
  the KV cache sized as the server does (it gets --max_new_tokens=max(tokens, 64))."""
  import jax  # pylint: disable=g-import-not-at-top
  import research  # pylint: disable=g-import-not-at-top
  from research.generate import stream  # pylint: disable=g-import-not-at-top
  lm = research.load_model(model)
  tok = lm.tokenizer

  def once(prompt: str, n: int) -> dict:
    ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": prompt}],
                                             add_generation_prompt=True))
    start = time.perf_counter()
    first, count = None, 0
    for _ in stream.stream(lm.model, ids, max(tokens, 64), jax.random.key(0), temperature=0.0,
                           eos_id=tok.eos_id):
      first = first or time.perf_counter()
      count += 1
      if count >= n:
        break
    end = time.perf_counter()
    return {"ttft": first - start, "seconds": end - start, "decode_s": end - first,
            "tokens": count}

  for prompt in PROMPTS:
    once(prompt, 2)  # compiles, as the server's warm-up does
  return once


def single(client, model: str, rounds: int, tokens: int, direct) -> tuple[dict, dict]:
  """One client through the server and the same answer without it, alternating A/B."""
  served, alone = [], []
  for i in range(rounds):
    prompt = PROMPTS[i % len(PROMPTS)]
    served.append(stream_chat(client, model, prompt, tokens))
    alone.append(direct(prompt, tokens))
  return _summary(served), _summary(alone)


def concurrent(client, model: str, clients: int, rounds: int, tokens: int) -> dict:
  from concurrent import futures  # pylint: disable=g-import-not-at-top
  rates, ttfts = [], []
  with futures.ThreadPoolExecutor(clients) as pool:
    for _ in range(rounds):
      start = time.perf_counter()
      runs = list(pool.map(lambda i: stream_chat(client, model, PROMPTS[i % len(PROMPTS)],
                                                 tokens), range(clients)))
      wall = time.perf_counter() - start
      rates.append(sum(r["tokens"] for r in runs) / wall)
      ttfts += [r["ttft"] for r in runs]
  return {"tokens_per_s": statistics.median(rates), "ttft_s": statistics.median(ttfts),
          "ttft_max_s": max(ttfts)}


def mixed(url: str, model: str, clients: int, minutes: float, tokens: int) -> dict:
  """Every thread loops random requests until the time is up; each is counted as sent
  before it goes and as completed only when its full, well-formed answer is back."""
  import ollama  # pylint: disable=g-import-not-at-top
  import openai  # pylint: disable=g-import-not-at-top
  counts = collections.Counter()
  latencies = collections.defaultdict(list)
  errors = []
  lock = threading.Lock()
  deadline = time.time() + minutes * 60

  def one(kind: str, oai, oll) -> bool:
    prompt = [{"role": "user", "content": random.choice(PROMPTS)}]
    if kind == "ollama_chat_stream":
      parts = list(oll.chat(model=model, messages=prompt, stream=True,
                            options={"num_predict": tokens}))
      return parts[-1].done and parts[-1].eval_count >= 1
    if kind == "ollama_chat":
      return oll.chat(model=model, messages=prompt, options={"num_predict": tokens}).done
    if kind == "openai_chat_stream":
      chunks = list(oai.chat.completions.create(model=model, messages=prompt, stream=True,
                                                max_tokens=tokens))
      return chunks[-1].choices[0].finish_reason in ("stop", "length")
    if kind == "openai_chat":
      done = oai.chat.completions.create(model=model, messages=prompt, max_tokens=tokens)
      return done.choices[0].finish_reason in ("stop", "length")
    if kind == "ollama_embed":
      return len(oll.embed(model="all-minilm-l6-v2", input=TEXTS).embeddings) == len(TEXTS)
    data = oai.embeddings.create(model="all-minilm-l6-v2", input=TEXTS).data
    return len(data) == len(TEXTS) and len(data[0].embedding) == 384

  kinds = ["ollama_chat_stream", "ollama_chat", "openai_chat_stream", "openai_chat",
           "ollama_embed", "openai_embed"]

  def loop(seed: int):
    rng = random.Random(seed)
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=600)
    oll = ollama.Client(host=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
    while time.time() < deadline:
      kind = rng.choice(kinds)
      with lock:
        counts["sent"] += 1
      start = time.perf_counter()
      try:
        ok = one(kind, oai, oll)
      except Exception as e:  # pylint: disable=broad-except
        ok = False
        errors.append(f"{kind}: {type(e).__name__}: {e}"[:300])
      with lock:
        counts["completed" if ok else "lost"] += 1
        counts[kind] += 1
        if ok:
          latencies["embed" if kind.endswith("embed") else "chat"].append(
              time.perf_counter() - start)

  threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  return {"sent": counts["sent"], "completed": counts["completed"], "lost": counts["lost"],
          "by_kind": {k: counts[k] for k in kinds},
          "chat_latency_s": statistics.median(latencies["chat"]) if latencies["chat"] else None,
          "embed_latency_s": (statistics.median(latencies["embed"]) if latencies["embed"]
                              else None),
          "errors": errors[:5]}


def main(argv):
  del argv
  import openai  # pylint: disable=g-import-not-at-top
  port = launch.free_port()
  url = f"http://127.0.0.1:{port}"
  results = {"model": _MODEL.value, "tokens": _TOKENS.value, "clients": _CLIENTS.value,
             "load_at_start": os.getloadavg()[0], "cpus": os.cpu_count()}
  direct = direct_runner(_MODEL.value, _TOKENS.value)
  started = time.perf_counter()
  proc = start_server(_MODEL.value, port)
  results["server_start_s"] = time.perf_counter() - started
  try:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=600)
    for prompt in PROMPTS:  # compiles every prompt bucket these prompts use
      stream_chat(client, _MODEL.value, prompt, 2)
    client.embeddings.create(model="all-minilm-l6-v2", input=TEXTS)  # loads MiniLM
    results["one_client"], results["no_server"] = single(client, _MODEL.value, _ROUNDS.value,
                                                         _TOKENS.value, direct)
    print("1 client:", json.dumps(results["one_client"]), flush=True)
    print("no server:", json.dumps(results["no_server"]), flush=True)
    results["served_over_direct"] = (results["one_client"]["tokens_per_s"]
                                     / results["no_server"]["tokens_per_s"])
    results["concurrent"] = concurrent(client, _MODEL.value, _CLIENTS.value, _ROUNDS.value,
                                       _TOKENS.value)
    results["concurrent_over_one"] = (results["concurrent"]["tokens_per_s"]
                                      / results["one_client"]["tokens_per_s"])
    print(f"{_CLIENTS.value} clients:", json.dumps(results["concurrent"]), flush=True)
    if _MINUTES.value > 0:
      results["mixed"] = mixed(url, _MODEL.value, _CLIENTS.value, _MINUTES.value, 32)
      print(f"mixed {_MINUTES.value} min:", json.dumps(results["mixed"]), flush=True)
  finally:
    proc.terminate()
    proc.wait(30)
  results["load_at_end"] = os.getloadavg()[0]
  out = Path(_OUT.value)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=2))
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  script.run(main)
