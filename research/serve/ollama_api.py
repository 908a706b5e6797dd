"""Ollama's native API: /api/chat, /api/generate, /api/embed, /api/tags, /api/version, and
/api/show, /api/ps, /api/embeddings, which the ollama CLI and older clients call.

The request's "model" names one of the registry's models (services.use: loaded on first
use, one resident at a time, unloaded "keep_alive" after its last request); a created
model's SYSTEM comes first unless the conversation has its own, and its PARAMETERs are the
options the request leaves out. /api/create, /api/copy, /api/delete and /api/pull are in
models_api.py.

Streams are NDJSON (one JSON object a line) unless "stream": false. The last object has
done=true, done_reason ("stop" or "length"), and the counts and times in nanoseconds:
prompt_eval_count, prompt_eval_duration, eval_count, eval_duration, total_duration.

Options used: temperature (0 is greedy), top_k (0 or less, or the vocabulary's size or more:
off), top_p, min_p, num_predict (negative: up to the server's cap; above the cap it is
lowered to it), seed, stop (at most settings.max_stop strings of max_stop_chars each). The
other options the client may send (num_ctx, repeat_penalty, ...) are accepted and ignored.
Embeddings wait their turn on the generation worker, at most settings.max_embed_inputs texts
and max_embed_chars characters a request.

"format": "json" (any JSON object) or a JSON schema constrains the answer to JSON that
parses and validates (research.generate.structured: llguidance's grammar masks the tokens
before sampling; compact JSON, no whitespace). An answer that reaches num_predict first is
cut, unfinished, with done_reason "length": bound the schema (maxLength, maximum, maxItems)
to be sure of a whole answer. A vocabulary that cannot spell JSON is a 400.

"logprobs": true (with "top_logprobs": 0 to 20) adds "logprobs": [{"token", "logprob",
"bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}] per generated token (EOS left
out): on each streamed object, for the tokens whose text it carries, or on the one object of
a whole answer. Log-probabilities are of the model's own distribution, log_softmax of its
logits, before temperature, top-k/p and the format's mask (research.generate.stream).

A knowledge-base answer (model "kb/<name>" or the field "kb") answers the last user message
(research.rag.answer, from the retrieved passages; greedy unless options.temperature is
given, then sampled with the other options) and puts "sources" on the final
object: [{"n", "source", "chunk", "text", "score"}]; the answer cites them as [n]. The
ollama Python client's types drop fields they do not know, so read "sources" from the JSON
itself (curl, httpx) or through the openai client.
"""

import dataclasses
import datetime
import json
from typing import Annotated, Any, Literal

import fastapi
import pydantic
from fastapi import responses
from starlette.concurrency import run_in_threadpool

from research.serve import limits
from research.serve import services as services_lib
from research.serve import worker as worker_lib

VERSION = "0.1.0"
Finite = Annotated[float, pydantic.Field(allow_inf_nan=False)]


class Strict(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid")


class Options(Strict):
  temperature: Annotated[Finite, pydantic.Field(ge=0)] | None = None
  top_k: int | None = None
  top_p: Annotated[Finite, pydantic.Field(gt=0, le=1)] | None = None
  min_p: Annotated[Finite, pydantic.Field(ge=0, le=1)] | None = None
  num_predict: int | None = None
  seed: int | None = None
  stop: list[str] | str | None = None
  # Accepted so that clients which send them work; this server does not use them.
  numa: bool | None = None
  num_ctx: int | None = None
  num_batch: int | None = None
  num_gpu: int | None = None
  main_gpu: int | None = None
  low_vram: bool | None = None
  f16_kv: bool | None = None
  logits_all: bool | None = None
  vocab_only: bool | None = None
  use_mmap: bool | None = None
  use_mlock: bool | None = None
  embedding_only: bool | None = None
  num_thread: int | None = None
  num_keep: int | None = None
  tfs_z: float | None = None
  typical_p: float | None = None
  repeat_last_n: int | None = None
  repeat_penalty: float | None = None
  presence_penalty: float | None = None
  frequency_penalty: float | None = None
  mirostat: int | None = None
  mirostat_tau: float | None = None
  mirostat_eta: float | None = None
  penalize_newline: bool | None = None


class Message(Strict):
  role: Literal["system", "user", "assistant", "tool"]
  content: str | None = None
  thinking: str | None = None
  images: list[str] | None = None
  tool_name: str | None = None
  tool_calls: list[dict[str, Any]] | None = None


class _Generating(Strict):
  model: str
  stream: bool | None = None
  options: Options | None = None
  format: Literal["", "json"] | dict[str, Any] | None = None
  keep_alive: float | str | None = None
  think: bool | Literal["low", "medium", "high"] | None = None
  logprobs: bool | None = None
  top_logprobs: int | None = None


class ChatRequest(_Generating):
  messages: list[Message] | None = None
  tools: list[dict[str, Any]] | None = None
  kb: str | None = None


class GenerateRequest(_Generating):
  prompt: str | None = None
  suffix: str | None = None
  system: str | None = None
  template: str | None = None
  context: list[int] | None = None
  raw: bool | None = None
  images: list[str] | None = None
  width: int | None = None
  height: int | None = None
  steps: int | None = None


class EmbeddingsRequest(Strict):
  model: str
  prompt: str | None = None
  options: Options | None = None
  keep_alive: float | str | None = None


class ShowRequest(Strict):
  model: str | None = None
  name: str | None = None  # the older spelling of model
  verbose: bool | None = None


class EmbedRequest(Strict):
  model: str
  input: str | list[str]
  truncate: bool | None = None
  options: Options | None = None
  keep_alive: float | str | None = None
  dimensions: int | None = None


def sampling(options: Options | None, cap: int, kb: bool = False) -> worker_lib.Sampling:
  """The request's sampler; what it leaves out takes Ollama's defaults, except that a
  knowledge-base answer (`kb`) is greedy unless the request sets a temperature."""
  o = options or Options()
  if o.num_predict == 0:
    raise services_lib.RequestError(400, "options.num_predict: expected a positive number of "
                                    "tokens, or -1 for up to the server's cap.")
  stop = [o.stop] if isinstance(o.stop, str) else (o.stop or [])
  return worker_lib.Sampling(
      temperature=(0.0 if kb else 0.8) if o.temperature is None else o.temperature,
      top_k=40 if o.top_k is None else (o.top_k if o.top_k > 0 else None),
      top_p=0.9 if o.top_p is None else o.top_p,
      min_p=o.min_p,
      max_tokens=cap if o.num_predict is None or o.num_predict < 0 else o.num_predict,
      seed=o.seed, stop=tuple(stop))


def _refuse_unsupported(r: _Generating) -> None:
  if r.think:
    raise services_lib.RequestError(400, "think: this model does not think; leave think out "
                                    "or set it to false.")
  if getattr(r, "tools", None):
    raise services_lib.RequestError(400, "tools: this server does not call tools.")
  if getattr(r, "images", None):
    raise services_lib.RequestError(400, "images: this model reads text only.")
  for i, m in enumerate(getattr(r, "messages", None) or []):
    if m.images:
      raise services_lib.RequestError(400, f"messages.{i}.images: this model reads text only.")


MAX_TOP_LOGPROBS = 20


async def structured(services: services_lib.Services, r: _Generating,
                     settings: worker_lib.Sampling, kb: str | None = None) -> worker_lib.Sampling:
  """`settings` with the request's "format" ("json": any JSON object; a JSON schema) as a
  grammar, and its "logprobs" / "top_logprobs" (0 to MAX_TOP_LOGPROBS)."""
  if kb is not None and (r.format or r.logprobs):
    field = "format" if r.format else "logprobs"
    raise services_lib.RequestError(400, f"{field}: knowledge-base answers are prose citing "
                                    f"their sources; leave {field} out.")
  grammar = None
  if r.format:
    schema = None if r.format == "json" else r.format
    grammar = await run_in_threadpool(services.grammar, schema, "format")
  top = None
  if r.logprobs:
    top = r.top_logprobs or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
      raise services_lib.RequestError(400, f"top_logprobs: expected 0 to {MAX_TOP_LOGPROBS} "
                                      f"tokens, got {top}.")
  return dataclasses.replace(settings, grammar=grammar, top_logprobs=top)


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def _final(done: worker_lib.Done) -> dict:
  out = {"done": True, "done_reason": done.reason, "total_duration": done.total_ns,
         "load_duration": 0, "prompt_eval_count": done.prompt_tokens,
         "prompt_eval_duration": done.prompt_ns, "eval_count": done.tokens,
         "eval_duration": done.eval_ns}
  if done.sources is not None:
    out["sources"] = done.sources
  return out


def _split_logprobs(items) -> tuple[list[str], dict]:
  """The text pieces, and {"logprobs": [...]} when the answer reported them."""
  logprobs = [i.as_json() for i in items if isinstance(i, worker_lib.Logprob)]
  texts = [i for i in items if not isinstance(i, worker_lib.Logprob)]
  return texts, ({"logprobs": logprobs} if logprobs else {})


def _tag(name: str, family: str) -> dict:
  return {"name": name, "model": name, "modified_at": _now(), "size": 0,
          "digest": "", "details": {"parent_model": "", "format": "bookforai",
                                    "family": family, "families": [family],
                                    "parameter_size": "", "quantization_level": ""}}


def with_parameters(entry, options: Options | None) -> Options | None:
  """The request's options over the model's PARAMETER defaults (research.serve.registry)."""
  if not entry.parameters:
    return options
  given = options.model_dump(exclude_none=True) if options else {}
  return Options(**{**entry.parameters, **given})


def loaded_models(services: services_lib.Services) -> list[dict]:
  entry, left_s = services.resident()
  if entry is None:
    return []
  expires = ("2999-01-01T00:00:00Z" if left_s == float("inf") else
             (datetime.datetime.now(datetime.timezone.utc)
              + datetime.timedelta(seconds=left_s)).isoformat().replace("+00:00", "Z"))
  return [dict(_tag(entry.name, "llama"), expires_at=expires, size_vram=0, context_length=0)]


def router(services: services_lib.Services) -> fastapi.APIRouter:
  api = fastapi.APIRouter(prefix="/api", tags=["ollama"])

  async def respond(request: fastapi.Request, stream: worker_lib.Stream, model: str,
                    streaming: bool, piece_of, text_of):
    """NDJSON objects as the pieces come (streaming) or one object at the end."""
    head = {"model": model, "created_at": _now()}
    if not streaming:
      items = await stream.collect(request.is_disconnected)
      done = items.pop()
      texts, logprobs = _split_logprobs(items)
      return dict(head, **text_of("".join(texts)), **_final(done), **logprobs)

    async def lines():
      pending = []  # the Logprobs of the tokens whose text comes in the next object
      try:
        async for item in stream:
          if isinstance(item, worker_lib.Logprob):
            pending.append(item)
            continue
          if isinstance(item, worker_lib.Done):
            obj = dict(head, created_at=_now(), **text_of(""), **_final(item))
          else:
            obj = dict(head, created_at=_now(), **piece_of(item), done=False)
          if pending:
            obj["logprobs"], pending = [p.as_json() for p in pending], []
          yield json.dumps(obj) + "\n"
      except Exception as e:  # pylint: disable=broad-except
        yield json.dumps({"error": limits.failure(e, "this generation")}) + "\n"
      finally:
        stream.cancel()  # a no-op when finished; frees the worker when the client left

    return responses.StreamingResponse(lines(), media_type="application/x-ndjson")

  def load_only(model: str, key: str, value) -> dict:
    return {"model": model, "created_at": _now(), key: value, "done": True,
            "done_reason": "load"}

  @api.post("/chat")
  async def chat(body: ChatRequest, request: fastapi.Request):
    """Chat: NDJSON stream of {"message": {"role": "assistant", "content": piece}} objects."""
    _refuse_unsupported(body)
    kb = services.resolve_model(body.model, body.kb)
    entry = await run_in_threadpool(services.use, body.model, body.keep_alive)
    message = lambda text: {"message": {"role": "assistant", "content": text}}
    if not body.messages:
      services.unload_when_due()  # keep_alive 0 with no messages: unload now
      return load_only(body.model, "message", {"role": "assistant", "content": ""})
    settings = sampling(with_parameters(entry, body.options), services.settings.max_new_tokens,
                        kb is not None)
    settings = await structured(services, body, settings, kb)
    services.check_stops(settings.stop, "options.stop")
    messages = entry.with_system([{"role": m.role, "content": m.content or ""}
                                  for m in body.messages])
    stream = await services.chat(messages, settings, kb)
    return await respond(request, stream, body.model, body.stream is not False, message, message)

  @api.post("/generate")
  async def generate(body: GenerateRequest, request: fastapi.Request):
    """Completion of a prompt: NDJSON stream of {"response": piece} objects. The prompt is
    wrapped in the chat template (with "system" if given) unless "raw": true."""
    _refuse_unsupported(body)
    if body.suffix:
      raise services_lib.RequestError(400, "suffix: fill-in-the-middle is not supported.")
    if body.context:
      raise services_lib.RequestError(400, "context: this server keeps no context between "
                                      "requests; send the conversation to /api/chat.")
    if services.resolve_model(body.model) is not None:
      raise services_lib.RequestError(400, "model: knowledge bases answer through /api/chat "
                                      "and /v1/chat/completions.")
    entry = await run_in_threadpool(services.use, body.model, body.keep_alive)
    response = lambda text: {"response": text}
    if not body.prompt:
      services.unload_when_due()  # keep_alive 0 with no prompt: unload now
      return load_only(body.model, "response", "")
    settings = sampling(with_parameters(entry, body.options), services.settings.max_new_tokens)
    settings = await structured(services, body, settings)
    services.check_stops(settings.stop, "options.stop")
    if body.raw:
      ids = await run_in_threadpool(services.prompt_ids, None, body.prompt)
    else:
      messages = entry.with_system(
          ([{"role": "system", "content": body.system}] if body.system else []) + [
              {"role": "user", "content": body.prompt}])
      ids = await run_in_threadpool(services.prompt_ids, messages)
    stream = services.generate(ids, settings)
    return await respond(request, stream, body.model, body.stream is not False, response,
                         response)

  @api.post("/embed")
  async def embed(body: EmbedRequest, request: fastapi.Request):
    """L2-normalised all-MiniLM-L6-v2 vectors (384 numbers) for one text or a list; the
    model name is not checked, every name embeds with MiniLM. They wait their turn on the
    generation worker, up to settings.max_embed_inputs texts and max_embed_chars in all."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if body.dimensions is not None:
      raise services_lib.RequestError(400, "dimensions: MiniLM vectors have 384 dimensions; "
                                      "leave dimensions out.")
    start = datetime.datetime.now()
    vectors, tokens = ((await services.embeddings(texts, request.is_disconnected)) if texts
                       else ([], 0))
    took = int((datetime.datetime.now() - start).total_seconds() * 1e9)
    return {"model": body.model, "embeddings": [[float(x) for x in v] for v in vectors],
            "total_duration": took, "load_duration": 0, "prompt_eval_count": tokens}

  @api.post("/embeddings")
  async def embeddings(body: EmbeddingsRequest, request: fastapi.Request):
    """The older one-text form of /api/embed, still sent by `ollama.embeddings`."""
    if not body.prompt:
      return {"embedding": []}
    vectors, _ = await services.embeddings([body.prompt], request.is_disconnected, "prompt")
    return {"embedding": [float(x) for x in vectors[0]]}

  @api.get("/tags")
  async def tags():
    """The registry's models (the server's own first: --model, the packaged one, each
    fine-tune export "ft-<job>", the created ones), one "kb/<name>" per knowledge base, and
    the embedding model."""
    kb = lambda name: name.startswith(services_lib.KB_PREFIX)
    return {"models": [_tag(n, "kb" if kb(n) else "llama") for n in services.model_names()]
                      + [_tag(services_lib.EMBED_MODEL, "bert")]}

  @api.post("/show")
  async def show(body: ShowRequest):
    """What `ollama run` and `ollama show` ask before they chat: the family, the context
    length and what the model can do."""
    name = body.model or body.name or ""
    if name.removesuffix(":latest") == services_lib.EMBED_MODEL:
      return {"modelfile": "", "parameters": "", "template": "", "modified_at": _now(),
              "details": _tag(name, "bert")["details"], "model_info": {
                  "general.architecture": "bert", "bert.embedding_length": 384},
              "capabilities": ["embedding"]}
    kb = services.resolve_model(name)
    entry = await run_in_threadpool(services.use, name)
    lm = await run_in_threadpool(services.lm)
    return {"modelfile": "", "system": entry.system or "",
            "parameters": "\n".join(f"{k} {v}" for k, v in entry.parameters.items()),
            "template": entry.template or "", "modified_at": _now(),
            "details": _tag(name, "kb" if kb else "llama")["details"],
            "model_info": {"general.architecture": "llama",
                           "llama.context_length": lm.config.max_length,
                           "llama.embedding_length": lm.config.width,
                           "llama.block_count": lm.config.num_layers},
            "capabilities": ["completion"]}

  @api.get("/ps")
  async def ps():
    """The resident chat model (one at a time) and when keep_alive unloads it."""
    return {"models": loaded_models(services)}

  @api.get("/version")
  async def version():
    return {"version": VERSION}

  return api
