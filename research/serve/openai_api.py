"""OpenAI's API: /v1/chat/completions, /v1/embeddings, /v1/models.

Chat streams as server-sent events when "stream": true, one chat.completion.chunk per text
piece, the last chunk with finish_reason, then "data: [DONE]"; with
stream_options.include_usage a chunk with usage and no choices comes before [DONE].

Sampling: temperature (default 1; 0 is greedy), top_p, seed, stop (at most
settings.max_stop strings of max_stop_chars each), max_tokens or
max_completion_tokens (above the server's cap they are lowered to it, and finish_reason
says "length"), and top_k, min_p as extras (extra_body in the openai client). Fields the
client may send that change nothing here (user, metadata, store, ...) are accepted; fields
that ask for what this server cannot do (n > 1, tools, images) get a 400.

response_format {"type": "json_object"} or {"type": "json_schema", "json_schema": {"name",
"schema", "strict"}} constrains the answer to JSON that parses and validates against the
schema (research.generate.structured), strict or not; at max_tokens it is cut, unfinished,
with finish_reason "length", as OpenAI's is. logprobs: true with top_logprobs 0 to 20 fills
choices[0].logprobs.content with [{"token", "logprob", "bytes", "top_logprobs"}] per token
(streamed: on the chunk that carries the token's text). They are the raw model's
log_softmax, before temperature, top-k/p and the format's mask: what OpenAI reports, so a
token's log-probability does not change with the sampler that drew it.

A knowledge-base answer (model "kb/<name>", or "kb": "<name>" via extra_body) answers the
last user message (research.rag.answer, from the retrieved passages; greedy unless the
request sets a temperature, then sampled with top_p, top_k, min_p and seed) and carries
"sources": [{"n", "source", "chunk", "text", "score", "cite"}, plus "pages" for a PDF's] at
the top level of the response, or of the final streamed chunk (the one with finish_reason).
"""

import base64
import dataclasses
import json
import time
import uuid
from typing import Annotated, Any, Literal

import fastapi
import numpy as np
import pydantic
from fastapi import responses
from starlette.concurrency import run_in_threadpool

from research.serve import limits
from research.serve import services as services_lib
from research.serve import worker as worker_lib

Finite = Annotated[float, pydantic.Field(allow_inf_nan=False)]
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class Strict(pydantic.BaseModel):
  model_config = pydantic.ConfigDict(extra="forbid")


class TextPart(Strict):
  type: Literal["text"]
  text: str


class Message(Strict):
  role: Literal["system", "developer", "user", "assistant", "tool", "function"]
  content: str | list[TextPart | dict[str, Any]] | None = None
  name: str | None = None
  tool_calls: list[dict[str, Any]] | None = None
  tool_call_id: str | None = None
  function_call: dict[str, Any] | None = None
  refusal: str | None = None
  audio: dict[str, Any] | None = None


class StreamOptions(Strict):
  include_usage: bool | None = None
  include_obfuscation: bool | None = None


class ChatRequest(Strict):
  model: str
  messages: list[Message]
  stream: bool | None = None
  stream_options: StreamOptions | None = None
  temperature: Annotated[Finite, pydantic.Field(ge=0, le=2)] | None = None
  top_p: Annotated[Finite, pydantic.Field(gt=0, le=1)] | None = None
  top_k: int | None = None
  min_p: Annotated[Finite, pydantic.Field(ge=0, le=1)] | None = None
  max_tokens: Annotated[int, pydantic.Field(ge=1)] | None = None
  max_completion_tokens: Annotated[int, pydantic.Field(ge=1)] | None = None
  stop: str | list[str] | None = None
  seed: int | None = None
  n: int | None = None
  kb: str | None = None
  response_format: dict[str, Any] | None = None
  logprobs: bool | None = None
  top_logprobs: int | None = None
  # Accepted and ignored: they change nothing a local model can do.
  frequency_penalty: Finite | None = None
  presence_penalty: Finite | None = None
  logit_bias: dict[str, int] | None = None
  metadata: dict[str, str] | None = None
  store: bool | None = None
  user: str | None = None
  safety_identifier: str | None = None
  prompt_cache_key: str | None = None
  prompt_cache_retention: str | None = None
  prompt_cache_options: dict[str, Any] | None = None
  service_tier: str | None = None
  reasoning_effort: str | None = None
  verbosity: str | None = None
  parallel_tool_calls: bool | None = None
  modalities: list[str] | None = None
  # Refused when used (see _refuse_unsupported).
  tools: list[dict[str, Any]] | None = None
  tool_choice: str | dict[str, Any] | None = None
  functions: list[dict[str, Any]] | None = None
  function_call: str | dict[str, Any] | None = None
  audio: dict[str, Any] | None = None
  prediction: dict[str, Any] | None = None
  web_search_options: dict[str, Any] | None = None
  moderation: dict[str, Any] | None = None


class EmbeddingRequest(Strict):
  model: str
  input: str | list[str] | list[int] | list[list[int]]
  encoding_format: Literal["float", "base64"] | None = None
  dimensions: int | None = None
  user: str | None = None


def _refuse(field: str, why: str):
  raise services_lib.RequestError(400, f"{field}: {why}")


def _refuse_unsupported(r: ChatRequest) -> None:
  if r.n not in (None, 1):
    _refuse("n", "this server returns one choice; leave n out or set it to 1.")
  if r.tools or r.functions or r.tool_choice not in (None, "none") or r.function_call:
    _refuse("tools", "this server does not call tools.")
  if r.audio or (r.modalities and r.modalities != ["text"]):
    _refuse("modalities", "this model reads and writes text only.")
  if r.prediction or r.web_search_options or r.moderation:
    field = "prediction" if r.prediction else (
        "web_search_options" if r.web_search_options else "moderation")
    _refuse(field, "this server does not support it; leave it out.")


def _text(message: Message, i: int) -> str:
  if message.content is None or isinstance(message.content, str):
    return message.content or ""
  parts = []
  for part in message.content:
    if not isinstance(part, TextPart):
      _refuse(f"messages.{i}.content", "this model reads text parts only.")
    parts.append(part.text)
  return "\n".join(parts)


def messages_of(r: ChatRequest) -> list[dict]:
  out = []
  for i, m in enumerate(r.messages):
    if m.role not in ROLES:
      _refuse(f"messages.{i}.role", f"{m.role!r} messages need tools, which this server does "
              "not call.")
    out.append({"role": ROLES[m.role], "content": _text(m, i)})
  if not out:
    _refuse("messages", "at least one message is needed.")
  return out


def sampling(r: ChatRequest, cap: int, kb: bool = False) -> worker_lib.Sampling:
  """The request's sampler; OpenAI's default temperature 1, except that a knowledge-base
  answer (`kb`) is greedy unless the request sets a temperature."""
  stop = [r.stop] if isinstance(r.stop, str) else (r.stop or [])
  limit = r.max_completion_tokens or r.max_tokens
  return worker_lib.Sampling(
      temperature=(0.0 if kb else 1.0) if r.temperature is None else r.temperature,
      top_k=r.top_k if r.top_k and r.top_k > 0 else None, top_p=r.top_p, min_p=r.min_p,
      max_tokens=cap if limit is None else limit, seed=r.seed, stop=tuple(stop))


# A model's PARAMETER defaults (Ollama's names) by the request field each stands for.
_PARAMETERS = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k",
               "min_p": "min_p", "seed": "seed", "stop": "stop", "num_predict": "max_tokens"}


def with_parameters(entry, r: ChatRequest) -> ChatRequest:
  """The request with the model's PARAMETER defaults where it leaves a field out."""
  update = {field: entry.parameters[name] for name, field in _PARAMETERS.items()
            if name in entry.parameters and getattr(r, field) is None}
  if update.get("max_tokens", 1) < 1:
    del update["max_tokens"]  # num_predict -1: up to the server's cap
  return r.model_copy(update=update) if update else r


MAX_TOP_LOGPROBS = 20


def _schema_of(response_format: dict) -> dict | None:
  """The JSON schema `response_format` asks for (None: any object)."""
  kind = response_format.get("type")
  if kind == "json_object":
    return None
  if kind == "json_schema":
    spec = response_format.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
      _refuse("response_format.json_schema", "expected {\"name\": ..., \"schema\": {...}}.")
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
      _refuse("response_format.json_schema.schema", "expected a JSON schema object.")
    return schema
  _refuse("response_format.type", f"expected \"text\", \"json_object\" or \"json_schema\", "
          f"got {kind!r}.")


async def structured(services: services_lib.Services, r: ChatRequest,
                     settings: worker_lib.Sampling, kb: str | None = None) -> worker_lib.Sampling:
  """`settings` with the request's response_format as a grammar (json_object: any JSON
  object; json_schema: its schema, strict or not, is always followed), and its logprobs /
  top_logprobs (0 to MAX_TOP_LOGPROBS, only with logprobs: true, as OpenAI has it)."""
  wants_json = bool(r.response_format) and r.response_format.get("type") != "text"
  if kb is not None and (wants_json or r.logprobs):
    field = "response_format" if wants_json else "logprobs"
    _refuse(field, f"knowledge-base answers are prose citing their sources; leave {field} out.")
  if r.top_logprobs is not None and not r.logprobs:
    _refuse("top_logprobs", "it needs logprobs: true.")
  top = None
  if r.logprobs:
    top = r.top_logprobs or 0
    if not 0 <= top <= MAX_TOP_LOGPROBS:
      _refuse("top_logprobs", f"expected 0 to {MAX_TOP_LOGPROBS} tokens, got {top}.")
  grammar = None
  if wants_json:
    schema = _schema_of(r.response_format)
    grammar = await run_in_threadpool(services.grammar, schema, "response_format")
  return dataclasses.replace(settings, grammar=grammar, top_logprobs=top)


def _logprobs(items) -> dict:
  """OpenAI's choices[i].logprobs of the Logprob items."""
  return {"content": [i.as_json() for i in items], "refusal": None}


def _usage(done: worker_lib.Done) -> dict:
  return {"prompt_tokens": done.prompt_tokens, "completion_tokens": done.tokens,
          "total_tokens": done.prompt_tokens + done.tokens}


def router(services: services_lib.Services) -> fastapi.APIRouter:
  api = fastapi.APIRouter(prefix="/v1", tags=["openai"])

  @api.post("/chat/completions")
  async def chat_completions(body: ChatRequest, request: fastapi.Request):
    """A chat completion, or (stream: true) server-sent chat.completion.chunk events."""
    _refuse_unsupported(body)
    kb = services.resolve_model(body.model, body.kb)
    messages = messages_of(body)
    entry = await run_in_threadpool(services.use, body.model)
    messages = entry.with_system(messages)
    settings = sampling(with_parameters(entry, body), services.settings.max_new_tokens,
                        kb is not None)
    settings = await structured(services, body, settings, kb)
    services.check_stops(settings.stop)
    stream = await services.chat(messages, settings, kb)
    head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()),
            "model": body.model, "system_fingerprint": None}

    if not body.stream:
      items = await stream.collect(request.is_disconnected)
      done = items.pop()
      scored = [i for i in items if isinstance(i, worker_lib.Logprob)]
      texts = [i for i in items if not isinstance(i, worker_lib.Logprob)]
      out = dict(head, object="chat.completion", choices=[{
          "index": 0, "message": {"role": "assistant", "content": "".join(texts),
                                  "refusal": None},
          "logprobs": _logprobs(scored) if body.logprobs else None,
          "finish_reason": done.reason}], usage=_usage(done))
      if done.sources is not None:
        out["sources"] = done.sources
      return out

    chunk = lambda delta, reason=None, scored=None: dict(
        head, object="chat.completion.chunk", choices=[{
            "index": 0, "delta": delta, "logprobs": _logprobs(scored) if scored else None,
            "finish_reason": reason}])
    event = lambda obj: f"data: {json.dumps(obj)}\n\n"

    async def events():
      pending = []  # the Logprobs of the tokens whose text comes in the next chunk
      try:
        yield event(chunk({"role": "assistant", "content": ""}))
        async for item in stream:
          if isinstance(item, worker_lib.Logprob):
            pending.append(item)
            continue
          if isinstance(item, worker_lib.Done):
            last, pending = chunk({}, item.reason, pending), []
            if item.sources is not None:
              last["sources"] = item.sources
            yield event(last)
            if body.stream_options and body.stream_options.include_usage:
              yield event(dict(head, object="chat.completion.chunk", choices=[],
                               usage=_usage(item)))
          else:
            yield event(chunk({"content": item}, scored=pending))
            pending = []
        yield "data: [DONE]\n\n"
      except Exception as e:  # pylint: disable=broad-except
        yield event({"error": {"message": limits.failure(e, "this generation"),
                               "type": "server_error"}})
      finally:
        stream.cancel()  # a no-op when finished; frees the worker when the client left

    return responses.StreamingResponse(events(), media_type="text/event-stream")

  @api.post("/embeddings")
  async def embeddings(body: EmbeddingRequest, request: fastapi.Request):
    """all-MiniLM-L6-v2 vectors, L2-normalised; every model name embeds with MiniLM. They
    wait their turn on the generation worker, up to settings.max_embed_inputs texts and
    max_embed_chars in all."""
    texts = [body.input] if isinstance(body.input, str) else body.input
    if any(not isinstance(t, str) for t in texts):
      _refuse("input", "token ids are not supported; send text.")
    if not texts:
      _refuse("input", "expected at least one text.")
    if body.dimensions is not None and body.dimensions != 384:
      _refuse("dimensions", "MiniLM vectors have 384 dimensions.")
    vectors, tokens = await services.embeddings(texts, request.is_disconnected)
    as_base64 = body.encoding_format == "base64"
    data = [{"object": "embedding", "index": i,
             "embedding": (base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                           if as_base64 else [float(x) for x in v])}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": body.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

  @api.get("/models")
  async def models():
    """The chat model, one "kb/<name>" per knowledge base, and the embedding model."""
    created = int(services.started)
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": created, "owned_by": "bookforai"}
        for name in services.model_names() + [services_lib.EMBED_MODEL]]}

  return api
