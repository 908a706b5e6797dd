"""The one generation worker: a thread that runs one generation at a time, in order.

  stream = worker.submit(lambda cancel: generation(lm, ids, sampling, budget, cancel))
  async for item in stream: ...     # text pieces, then one Done
  stream.cancel()                   # the client left: the worker stops at the next token

Why one thread and a bounded queue: the model and its KV cache are one piece of memory and
two generations side by side only halve each other's speed; queueing keeps each stream fast
and the order fair. A full queue is refused at once (503) rather than left to time out.
"""

import asyncio
import contextlib
import dataclasses
import queue
import secrets
import threading
import time
from typing import Callable, Iterator

import jax

from research.generate import stream as stream_lib
from research.generate import structured
from research.text import detokenize


class Busy(Exception):
  """The queue is full."""


@dataclasses.dataclass(frozen=True)
class Sampling:
  temperature: float = 0.8
  top_k: int | None = None
  top_p: float | None = None
  min_p: float | None = None
  max_tokens: int = 128
  seed: int | None = None          # None: a fresh seed per request
  stop: tuple[str, ...] = ()
  grammar: str | None = None       # llguidance grammar the answer must follow (structured.py)
  top_logprobs: int | None = None  # None: no log-probs; N: each token's and the N likeliest


@dataclasses.dataclass(frozen=True)
class Logprob:
  """A generated token's log-probability and the likeliest tokens at its place, as text;
  streamed just before the text the token completes."""
  token: str
  logprob: float
  top: tuple[tuple[str, float], ...] = ()

  def as_json(self) -> dict:
    """The entry OpenAI's logprobs.content and Ollama's logprobs both hold."""
    entry = lambda token, logprob: {"token": token, "logprob": logprob,
                                    "bytes": list(token.encode("utf-8"))}
    return dict(entry(self.token, self.logprob),
                top_logprobs=[entry(token, logprob) for token, logprob in self.top])


@dataclasses.dataclass
class Done:
  """What ends every generation: why it ended and what it cost."""
  reason: str = "stop"             # "stop": EOS or a stop string; "length": max_tokens
  prompt_tokens: int = 0
  tokens: int = 0
  prompt_ns: int = 0               # from the start to the first new token (prefill)
  eval_ns: int = 0                 # the rest of the tokens
  total_ns: int = 0
  sources: list[dict] | None = None


@contextlib.contextmanager
def _closing(items):
  """An iterator over `items`, closed on exit when it is a generator (so its `finally`
  clauses and the ones of the generators it wraps run now, not at garbage collection)."""
  it = iter(items)
  try:
    yield it
  finally:
    if hasattr(it, "close"):
      it.close()


class StopCutter:
  """Cuts streamed text at the first stop string, holding back a tail that could still
  become one, so no part of a stop string is ever shown."""

  def __init__(self, stops):
    self.stops = [s for s in stops if s]
    self.held = ""

  def feed(self, piece: str) -> tuple[str, bool]:
    """(text that is safe to show, whether a stop string was reached)."""
    text = self.held + piece
    found = [text.find(s) for s in self.stops if s in text]
    if found:
      self.held = ""
      return text[:min(found)], True
    keep = 0
    for k in range(min(len(text), max((len(s) for s in self.stops), default=1) - 1), 0, -1):
      if any(s.startswith(text[-k:]) for s in self.stops):
        keep = k
        break
    self.held = text[len(text) - keep:]
    return text[:len(text) - keep], False

  def flush(self) -> str:
    out, self.held = self.held, ""
    return out


def seed_for(seed: int | None) -> int:
  # jax keys take 32-bit seeds; larger ones (clients send up to 2**64) wrap around
  return secrets.randbits(31) if seed is None else seed % (1 << 31)


def key_for(seed: int | None):
  return jax.random.key(seed_for(seed))


def finish(pieces: Iterator[str], sampling: Sampling, done: Done, start_ns: int,
           cancel: threading.Event, count_pieces: bool = True) -> Iterator:
  """Streams `pieces` cut at the stop strings (and, when `count_pieces`, at max_tokens
  pieces), then `done` with its times filled in."""
  cutter = StopCutter(sampling.stop)
  first_ns = None
  with _closing(pieces) as pieces:
    for piece in pieces:
      if isinstance(piece, Logprob):
        yield piece
        continue
      first_ns = first_ns or time.perf_counter_ns()
      done.tokens += count_pieces
      text, stopped = cutter.feed(piece)
      if text:
        yield text
      if stopped:
        done.reason = "stop"
        break
      if cancel.is_set():
        break
      if count_pieces and done.tokens >= sampling.max_tokens:
        done.reason = "length"
        break
  tail = cutter.flush()
  if tail:
    yield tail
  end_ns = time.perf_counter_ns()
  first_ns = first_ns or end_ns
  done.prompt_ns, done.eval_ns = first_ns - start_ns, end_ns - first_ns
  done.total_ns = end_ns - start_ns
  yield done


def generation(lm, prompt_ids: list[int], sampling: Sampling, budget: int,
               cancel: threading.Event) -> Iterator:
  """Text pieces of the model's answer to `prompt_ids` (with a Logprob before each token's
  piece when sampling.top_logprobs is set), then a Done.

  The KV cache is sized for `budget` tokens whatever max_tokens is, so requests with
  different max_tokens share one compiled program per prompt bucket."""
  start_ns = time.perf_counter_ns()
  done = Done(prompt_tokens=len(prompt_ids))
  constraint = None if sampling.grammar is None else structured.Constraint(
      lm.tokenizer, lm.config.vocab_size, sampling.grammar)
  how = dict(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p,
             min_p=sampling.min_p, eos_id=lm.tokenizer.eos_id, constraint=constraint)
  key = key_for(sampling.seed)
  if sampling.top_logprobs is None:
    tokens = stream_lib.stream(lm.model, prompt_ids, budget, key, **how)
    pieces = stream_lib.stream_text(lm.tokenizer, _counted(tokens, sampling.max_tokens, done,
                                                           cancel))
  else:
    scored = stream_lib.stream_scored(lm.model, prompt_ids, budget, key,
                                      top_logprobs=sampling.top_logprobs, **how)
    pieces = _scored_pieces(lm.tokenizer, _counted(scored, sampling.max_tokens, done, cancel))
  yield from finish(pieces, sampling, done, start_ns, cancel, count_pieces=False)


def _scored_pieces(tokenizer, scored):
  """Logprob, then the token's text piece, per token; EOS ends the text and has neither."""
  detok = detokenize.Detokenizer(tokenizer)
  text = lambda token: tokenizer.decode([token])
  with contextlib.closing(scored):
    for s in scored:
      if s.token == tokenizer.eos_id:
        continue
      yield Logprob(text(s.token), s.logprob, tuple((text(t), lp) for t, lp in s.top))
      yield detok.feed(s.token)


def _counted(tokens, max_tokens: int, done: Done, cancel: threading.Event):
  """The tokens, at most max_tokens of them, counted into `done`; ends early on cancel."""
  with contextlib.closing(tokens):
    for token in tokens:
      done.tokens += 1
      yield token
      if cancel.is_set():
        return
      if done.tokens >= max_tokens:
        done.reason = "length"
        return


class _Failure:

  def __init__(self, error: BaseException):
    self.error = error


_END = object()


class Stream:
  """The async side of one job: iterate for its items; `cancel()` when the client leaves."""

  def __init__(self, loop: asyncio.AbstractEventLoop):
    self._loop = loop
    self._items: asyncio.Queue = asyncio.Queue()
    self.cancelled = threading.Event()

  def put(self, item) -> None:  # called from the worker thread
    self._loop.call_soon_threadsafe(self._items.put_nowait, item)

  def cancel(self) -> None:
    self.cancelled.set()

  async def __aiter__(self):
    while True:
      item = await self._items.get()
      if item is _END:
        return
      if isinstance(item, _Failure):
        raise item.error
      yield item

  async def collect(self, disconnected: Callable | None = None, poll_s: float = 0.5) -> list:
    """Every item; cancels the job if `await disconnected()` turns true while waiting."""
    out = []
    while True:
      try:
        item = await asyncio.wait_for(self._items.get(), poll_s)
      except asyncio.TimeoutError:
        if disconnected is not None and await disconnected():
          self.cancel()
          raise ConnectionAbortedError("the client disconnected") from None
        continue
      if item is _END:
        return out
      if isinstance(item, _Failure):
        raise item.error
      out.append(item)


class Worker:
  """One thread, a queue of at most `queue_size` waiting jobs."""

  def __init__(self, queue_size: int = 16):
    self._jobs: queue.Queue = queue.Queue(queue_size)
    self._lock = threading.Lock()
    self._thread = None
    self.completed = 0
    self.cancelled = 0

  def pending(self) -> int:
    return self._jobs.qsize()

  def submit(self, produce: Callable[[threading.Event], Iterator]) -> Stream:
    """Queues `produce(cancel_event)`, run later in the worker thread; raises Busy when the
    queue is full. Must be called from the event loop that will read the stream."""
    stream = Stream(asyncio.get_running_loop())
    try:
      self._jobs.put_nowait((produce, stream))
    except queue.Full:
      raise Busy(f"The server is busy: {self._jobs.maxsize} requests are already waiting; "
                 "retry in a moment.") from None
    with self._lock:
      if self._thread is None:
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self._thread.start()
    return stream

  def _run(self) -> None:
    while True:
      produce, stream = self._jobs.get()
      if stream.cancelled.is_set():
        self.cancelled += 1
        stream.put(_END)
        continue
      try:
        with _closing(produce(stream.cancelled)) as items:
          for item in items:
            stream.put(item)
            if stream.cancelled.is_set():
              break
      except Exception as e:  # pylint: disable=broad-except
        stream.put(_Failure(e))
      if stream.cancelled.is_set():
        self.cancelled += 1
      else:
        self.completed += 1
      stream.put(_END)
