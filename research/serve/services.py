"""What the routes share: the model (loaded once, on first use), the embedder, the knowledge
bases and the one generation worker.

  services = Services(settings)                 # or Services(settings, lm=tiny, embedder=fake)
  services.resolve_model("kb/docs")             # -> "docs": answer from that knowledge base
  stream = await services.chat(messages, sampling, kb=None)   # -> worker.Stream of pieces, then Done

Models come from research.serve.registry by the request's "model"; one is resident at a
time (the worker generates one answer at a time anyway): `use(name, keep_alive)` loads it
on first use, unloading the one before, and it is unloaded `keep_alive` after its last
request (Ollama's: default 5m, 0 right after the answer, negative never). A generation
already queued keeps the model object it was given, so a swap never changes its answer.
The plain `lm()` is the resident model, else the one the server was started with.

A knowledge base is named either by the model name "kb/<name>" (so unmodified Ollama and
OpenAI clients can use it) or by a body field "kb": "<name>". Names are the --kb folder's
own name and every subfolder of settings.kb_root that holds a knowledge base.
"""

import dataclasses
import math
import re
import threading
import time
from pathlib import Path

import numpy as np
from starlette import concurrency

from research.rag import answer
from research.rag import retrieve
from research.rag import store
from research.serve import registry as registry_lib
from research.serve import worker as worker_lib
from research.serve.settings import Settings

KB_PREFIX = "kb/"
EMBED_MODEL = "all-minilm-l6-v2"
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
EMBED_BATCH = 32  # texts embedded between two looks at the cancel flag
DEFAULT_KEEP_ALIVE_S = 300.0  # Ollama's 5m
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class RequestError(Exception):
  """A request the server refuses: an HTTP status and one sentence for the client."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


def keep_alive_seconds(value) -> float:
  """Ollama's keep_alive: seconds (a number, or a string of one), or a Go duration such as
  "5m" or "1h30m"; None is the default 5m, a negative one is forever (inf)."""
  if value is None:
    return DEFAULT_KEEP_ALIVE_S
  if isinstance(value, str):
    text = value.strip()
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    try:
      seconds = float(body)
    except ValueError:
      parts = _DURATION.findall(body)
      if not body or "".join(n + u for n, u in parts) != body:
        raise RequestError(400, f"keep_alive: {value!r} is not a duration; send seconds or a "
                           "duration such as '5m', '1h30m' or '-1'.") from None
      seconds = sum(float(n) * _UNIT_S[u] for n, u in parts)
    value = sign * seconds
  if math.isnan(value):
    raise RequestError(400, "keep_alive: NaN is not a duration.")
  return math.inf if value < 0 else float(value)


def _folder_name(path) -> str:
  return re.sub(r"[^A-Za-z0-9_-]", "-", Path(path).resolve().name)[:64] or "kb"


class Services:

  def __init__(self, settings: Settings, lm=None, embedder=None):
    self.settings = settings
    self._lm = lm
    self.registry = registry_lib.Registry(settings.model, settings.adapter, settings.work_dir)
    self._resident = self.registry.get(settings.model) if lm is not None else None
    self._expires = math.inf  # time.monotonic() at which the resident model is unloaded
    self._timer: threading.Timer | None = None
    self._generating = False  # the worker runs a generation now (see _unloads_when_due)
    self._embedder = embedder
    self._lm_lock = threading.RLock()
    self._embedder_lock = threading.Lock()
    self._kb_lock = threading.Lock()
    self._kbs: dict[str, tuple] = {}  # name -> (manifest stamp, KnowledgeBase, Retriever)
    self.worker = worker_lib.Worker(settings.queue_size)
    self.started = time.time()

  # -- models ---------------------------------------------------------------------------

  def lm(self):
    """The resident chat model; when none is, the one the server was started with
    (research.load_model(settings.model, adapter=...)), loaded now."""
    with self._lm_lock:
      if self._lm is None:
        self._load(self.registry.get(self.settings.model))
      return self._lm

  def _load(self, entry: registry_lib.Entry) -> None:
    import research  # pylint: disable=g-import-not-at-top
    self._lm, self._resident = None, None  # the old model's memory goes before the new loads
    lm = research.load_model(entry.source, adapter=entry.adapter,
                             quantized=self.settings.quantized)
    if entry.template:
      lm.tokenizer.template = entry.template
    self._lm, self._resident = lm, entry

  def loaded(self) -> bool:
    return self._lm is not None

  def model_entry(self, requested: str | None) -> registry_lib.Entry:
    """The registry's entry for a request's model: the server's own for "" and "kb/<name>";
    RequestError 404 for a name it does not have."""
    requested = registry_lib.bare(requested)
    if not requested or requested.startswith(KB_PREFIX):
      requested = self.settings.model
    try:
      return self.registry.get(requested)
    except LookupError:
      raise RequestError(404, f"model {requested!r} not found; this server has "
                         f"{', '.join(repr(n) for n in self.model_names())}.") from None

  def use(self, requested: str | None, keep_alive=None) -> registry_lib.Entry:
    """Makes the request's model resident (loading it, unloading the one before) and sets
    when it is unloaded: keep_alive after now (Ollama's semantics, keep_alive_seconds).
    Blocking: call it off the event loop."""
    entry = self.model_entry(requested)
    keep_s = keep_alive_seconds(keep_alive)
    with self._lm_lock:
      if self._resident is None or self._resident.load_key() != entry.load_key():
        self._load(entry)
      else:
        self._resident = entry  # same weights, maybe another name's system or parameters
      self._expires = time.monotonic() + keep_s
      if self._timer is not None:
        self._timer.cancel()
        self._timer = None
      if 0 < keep_s < math.inf:
        # keep_alive 0 needs no timer: the answer's end unloads it (generate, ask_kb)
        self._timer = threading.Timer(keep_s, self.unload_when_due)
        self._timer.daemon = True
        self._timer.start()
    return entry

  def unload_when_due(self) -> bool:
    """Unloads the resident model once its keep_alive has run out and no generation runs or
    waits for it; True if it did."""
    with self._lm_lock:
      if (self._lm is None or time.monotonic() < self._expires or self._generating
          or self.worker.pending()):
        return False
      self._lm, self._resident = None, None
      return True

  def resident(self) -> tuple[registry_lib.Entry | None, float]:
    """(the resident model's entry or None, seconds until it is unloaded: inf for never)."""
    self.unload_when_due()
    with self._lm_lock:
      return self._resident, max(0.0, self._expires - time.monotonic())

  def _unloads_when_due(self, produce):
    """`produce` for the worker, marked as generating while it runs and followed by
    unload_when_due (keep_alive 0 unloads the model as soon as the answer is complete)."""

    def run(cancel):
      self._generating = True
      try:
        yield from produce(cancel)
      finally:
        self._generating = False
        self.unload_when_due()

    return run

  def embedder(self):
    """all-MiniLM-L6-v2 (research.rag.embed), loaded once."""
    with self._embedder_lock:
      if self._embedder is None:
        from research.rag import embed  # pylint: disable=g-import-not-at-top
        self._embedder = embed.load_minilm()
      return self._embedder

  @property
  def model_name(self) -> str:
    return self.settings.model

  def model_names(self) -> list[str]:
    """What /api/tags and /v1/models list: the registry's models (the server's own first),
    then one "kb/<name>" per knowledge base."""
    return self.registry.names() + [KB_PREFIX + name for name in self.kb_names()]

  def resolve_model(self, requested: str | None, kb: str | None = None) -> str | None:
    """The knowledge base a chat request names (by "kb/<name>" or the kb field), or None
    for the plain model; RequestError 404 for a model this server does not have."""
    requested = (requested or "").removesuffix(":latest")
    if requested.startswith(KB_PREFIX):
      if kb is not None and kb != requested[len(KB_PREFIX):]:
        raise RequestError(400, f"kb: {kb!r} disagrees with the model {requested!r}; name "
                           "the knowledge base once.")
      kb = requested[len(KB_PREFIX):]
    else:
      self.model_entry(requested)
    if kb is not None and kb not in self.kb_names():
      raise RequestError(404, f"knowledge base {kb!r} not found; this server has "
                         f"{self.kb_names() or 'none'}.")
    return kb

  # -- knowledge bases ------------------------------------------------------------------

  def kb_names(self) -> list[str]:
    names = [_folder_name(self.settings.kb)] if self.settings.kb else []
    root = self.settings.kb_root
    if root.is_dir():
      names += sorted(p.name for p in root.iterdir()
                      if p.is_dir() and _NAME.fullmatch(p.name) and (p / store.MANIFEST).is_file()
                      and p.name not in names)
    return names

  def kb_dir(self, name: str) -> Path:
    """The folder of knowledge base `name`: the --kb folder under its own name, else
    kb_root/name (which need not exist yet)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
      raise ValueError(f"knowledge-base name {name!r}: use 1 to 64 letters, digits, '-' or "
                       "'_'.")
    if self.settings.kb and name == _folder_name(self.settings.kb):
      return Path(self.settings.kb)
    return self.settings.kb_root / name

  def _stamp(self, directory: Path):
    try:
      stat = (directory / store.MANIFEST).stat()
    except FileNotFoundError:
      return None
    return stat.st_mtime_ns, stat.st_size

  def _kb_entry(self, name: str):
    directory = self.kb_dir(name)
    with self._kb_lock:
      stamp = self._stamp(directory)
      cached = self._kbs.get(name)
      if cached is None or cached[0] != stamp:
        cached = (stamp, store.KnowledgeBase.open(directory), None)
        self._kbs[name] = cached
      return cached

  def open_kb(self, name: str) -> store.KnowledgeBase:
    """The knowledge base `name`, opened again whenever its manifest changed."""
    return self._kb_entry(name)[1]

  def retriever(self, name: str) -> tuple[store.KnowledgeBase, retrieve.Retriever]:
    stamp, kb, found = self._kb_entry(name)
    if found is None:
      found = kb.retriever(self.embedder())
      with self._kb_lock:
        if self._kbs.get(name, (None,))[0] == stamp:
          self._kbs[name] = (stamp, kb, found)
    return kb, found

  # -- generation -----------------------------------------------------------------------

  def budget(self, prompt_tokens: int) -> int:
    """The KV-cache size in new tokens: settings.max_new_tokens, less for models with
    learned positions whose table would overflow."""
    lm = self.lm()
    budget = self.settings.max_new_tokens
    if lm.config.position in ("learned", "sinusoidal"):
      padded = -(-prompt_tokens // 64) * 64
      budget = min(budget, lm.config.max_length // 64 * 64 - padded)
    return budget

  def prompt_ids(self, messages: list[dict] | None = None, raw: str | None = None) -> list[int]:
    """Token ids of a chat (rendered with the model's template) or of raw text; 400 if
    longer than settings.max_prompt_tokens."""
    tok = self.lm().tokenizer
    text = raw if raw is not None else tok.apply_chat_template(messages,
                                                               add_generation_prompt=True)
    limit = self.settings.max_prompt_tokens
    if len(text) > limit * answer.MAX_CHARS_PER_TOKEN:  # refused before tokenising
      raise RequestError(400, f"prompt: {len(text)} characters, more than a prompt of at most "
                         f"{limit} tokens can hold.")
    ids = tok.encode(text)
    if not ids:
      raise RequestError(400, "prompt: it is empty after tokenization.")
    if len(ids) > limit:
      raise RequestError(400, f"prompt: {len(ids)} tokens, more than this server's limit of "
                         f"{limit}.")
    if self.budget(len(ids)) < 1:
      raise RequestError(400, f"prompt: {len(ids)} tokens leave no room to answer in the "
                         "model's context.")
    return ids

  def capped(self, sampling: worker_lib.Sampling, prompt_tokens: int) -> worker_lib.Sampling:
    """max_tokens above the server's cap (or what the context leaves) is lowered to it; a
    top_k of the vocabulary's size or more keeps every token, so it is turned off (the
    sampler traces k, so no k costs a compilation, but an int32 cannot hold every k)."""
    top_k = sampling.top_k
    if top_k is not None and top_k >= self.lm().config.vocab_size:
      top_k = None
    return dataclasses.replace(sampling, top_k=top_k,
                               max_tokens=min(sampling.max_tokens, self.budget(prompt_tokens)))

  def check_stops(self, stops, field: str = "stop") -> tuple[str, ...]:
    """The stop strings, or RequestError 400 for more than settings.max_stop of them or one
    longer than settings.max_stop_chars (each is searched for after every token)."""
    stops = tuple(stops or ())
    if len(stops) > self.settings.max_stop:
      raise RequestError(400, f"{field}: {len(stops)} stop strings, more than this server's "
                         f"limit of {self.settings.max_stop}.")
    longest = max((len(s) for s in stops), default=0)
    if longest > self.settings.max_stop_chars:
      raise RequestError(400, f"{field}: a stop string of {longest} characters, more than "
                         f"this server's limit of {self.settings.max_stop_chars}.")
    return stops

  def grammar(self, schema: dict | None, field: str) -> str:
    """The llguidance grammar of JSON valid under `schema` (None: any object) for this
    model (research.generate.structured); RequestError 400 naming `field` when the schema
    or the model's vocabulary cannot make one."""
    from research.generate import structured  # pylint: disable=g-import-not-at-top
    lm = self.lm()
    try:
      return structured.checked_grammar(lm.tokenizer, lm.config.vocab_size, schema)
    except ValueError as e:
      raise RequestError(400, f"{field}: {e}") from None

  def generate(self, prompt_ids: list[int], sampling: worker_lib.Sampling) -> worker_lib.Stream:
    """Queues a generation; the stream yields text pieces, then a worker.Done."""
    sampling = self.capped(sampling, len(prompt_ids))
    budget = self.budget(len(prompt_ids))
    lm = self.lm()
    return self.worker.submit(self._unloads_when_due(
        lambda cancel: worker_lib.generation(lm, prompt_ids, sampling, budget, cancel)))

  async def chat(self, messages: list[dict], sampling: worker_lib.Sampling,
                 kb: str | None = None) -> worker_lib.Stream:
    """Queues a chat answer: from knowledge base `kb` to the last user message when one is
    named, else from the model to the whole conversation in its chat template."""
    if kb is not None:
      question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
      await concurrency.run_in_threadpool(self.check_question, question)
      return self.ask_kb(kb, question, sampling)
    # tokenising may take a while: off the event loop; submitting must happen on it
    ids = await concurrency.run_in_threadpool(self.prompt_ids, messages)
    return self.generate(ids, sampling)

  def check_question(self, question: str) -> None:
    """RequestError 400 for a knowledge-base question that is empty or that leaves no room
    in settings.max_prompt_tokens (research.rag.answer.check_question: characters first,
    then tokens), so no long question reaches the generation thread."""
    if not question.strip():
      raise RequestError(400, "messages: a knowledge-base question needs a user message with "
                         "text.")
    try:
      answer.check_question(self.lm().tokenizer, question, self.settings.max_prompt_tokens)
    except ValueError as e:
      raise RequestError(400, f"messages: the knowledge-base {e}") from None

  def ask_kb(self, name: str, question: str, sampling: worker_lib.Sampling) -> worker_lib.Stream:
    """Queues an answer from knowledge base `name` (research.rag.answer, citing [n]) with
    the request's sampling; its Done carries the sources. The caller has checked the
    question (check_question)."""
    if not question.strip():
      raise RequestError(400, "messages: a knowledge-base question needs a user message with "
                         "text.")
    sampling = self.capped(sampling, 0)

    def produce(cancel):
      start_ns = time.perf_counter_ns()
      kb, found = self.retriever(name)
      if not len(kb):
        result = answer.Result([], [], iter([answer.NO_ANSWER]))
      else:
        result = answer.ask(self.lm, found, kb.rows, question,
                            max_new_tokens=self.settings.max_new_tokens,
                            max_prompt_tokens=self.settings.max_prompt_tokens,
                            seed=worker_lib.seed_for(sampling.seed),
                            temperature=sampling.temperature, top_k=sampling.top_k,
                            top_p=sampling.top_p, min_p=sampling.min_p)
      done = worker_lib.Done(sources=sources(kb, result))
      if result.hits:
        chosen = [kb.rows[h.row] for h in result.hits]
        done.prompt_tokens = len(answer.prompt_ids(self.lm().tokenizer, question, chosen,
                                                   self.settings.max_prompt_tokens)[0])
      yield from worker_lib.finish(result.pieces, sampling, done, start_ns, cancel)

    return self.worker.submit(self._unloads_when_due(produce))

  def check_embed(self, texts: list[str], field: str = "input") -> None:
    """RequestError 400 for more than settings.max_embed_inputs texts or more than
    settings.max_embed_chars characters in all."""
    limit = self.settings.max_embed_inputs
    if len(texts) > limit:
      raise RequestError(400, f"{field}: {len(texts)} texts, more than this server's limit of "
                         f"{limit} in one request.")
    chars, limit = sum(len(t) for t in texts), self.settings.max_embed_chars
    if chars > limit:
      raise RequestError(400, f"{field}: {chars} characters in all, more than this server's "
                         f"limit of {limit} in one request.")

  def embed(self, texts: list[str], cancel: threading.Event | None = None):
    """L2-normalised MiniLM vectors, N x 384, and the number of tokens they took; embedded
    EMBED_BATCH texts at a time, stopping early (None) once `cancel` is set."""
    embedder = self.embedder()
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
      if cancel is not None and cancel.is_set():
        return None
      parts.append(embedder.encode(texts[start:start + EMBED_BATCH]))
    vectors = np.concatenate(parts) if parts else np.zeros((0, embedder.dim), np.float32)
    return vectors, sum(embedder.count_tokens(texts))

  async def embeddings(self, texts: list[str], disconnected=None, field: str = "input"):
    """What `embed` returns, computed on the generation worker (so it waits its turn behind
    answers and is cancelled, between batches, when `await disconnected()` turns true);
    RequestError 400 past the bounds of check_embed, worker.Busy when the queue is full."""
    self.check_embed(texts, field)

    def produce(cancel):
      result = self.embed(texts, cancel)
      if result is not None:
        yield result

    items = await self.worker.submit(produce).collect(disconnected)
    if not items:
      raise ConnectionAbortedError("the client disconnected")
    return items[0]


def sources(kb: store.KnowledgeBase, result: answer.Result) -> list[dict]:
  """The cited passages: [n] in the answer is the source with that "n", named as
  KnowledgeBase.label names it (no server path); "cite" is how the prompt named it
  ("file.pdf p. 3"), and a PDF's passage has its "pages" [first, last]. "score" is the
  hit's match, the number the threshold compared: comparable across questions, which the
  fused ranking score (min-max, RRF) is not."""
  out = []
  for (n, source, index), hit in zip(result.sources, result.hits):
    row = kb.rows[hit.row]
    out.append({"n": n, "source": kb.label(source), "chunk": index, "text": row["text"],
                "score": round(hit.match, 6), "cite": store.cite(Path(source).name, row),
                **({"pages": row["pages"]} if "pages" in row else {})})
  return out
