"""The server: `create_app(settings)` -> a FastAPI app with Ollama's API under /api, OpenAI's
under /v1 and the web UI at /; `python -m experiments.serve` runs it with uvicorn.

Every route needs `Authorization: Bearer <key>` when settings.api_key is set (the UI's page
and static files are plain routes a browser can load; its /ui/ routes need the key), and a
Host header that names this server, and no other site's Origin (limits.Guard). The API docs
(/docs, /openapi.json) are served only with settings.docs.

Every refusal is one sentence in the error shape its API's clients read (limits.error_body):
400 for malformed JSON, a wrong type or an unknown field, naming the field, and for a prompt
over settings.max_prompt_tokens; 401 for the key; 403 for a foreign Host or Origin; 404 for
an unknown model or route; 413 for a body over settings.max_body_bytes (max_upload_bytes on
the UI's routes); 503 when the generation queue is full. max_tokens /
num_predict above settings.max_new_tokens is capped, not refused: the answer ends with
finish_reason / done_reason "length". An unexpected failure is a 500 with one sentence; the
traceback goes to the log.
"""

import fastapi
from fastapi import exceptions
from fastapi import responses
from starlette import exceptions as starlette_exceptions

from research.serve import auth
from research.serve import limits
from research.serve import models_api
from research.serve import ollama_api
from research.serve import openai_api
from research.serve import services as services_lib
from research.serve import web
from research.serve import worker
from research.serve.settings import Settings

DESCRIPTION = """BookForAI's models behind Ollama's and OpenAI's APIs.

Knowledge-base answers: name the knowledge base as the model, `"model": "kb/<name>"`, or add
`"kb": "<name>"` to a chat request (the openai client: `extra_body={"kb": "<name>"}`). The
answer cites passages as [n] and the response carries `"sources": [{"n", "source", "chunk",
"text", "score"}]` (Ollama: on the final object; OpenAI: top level, or on the final chunk).
The answer is greedy unless the request sets a temperature.
"""

# pydantic names union members in an error's location ("str", "list[str]"); they are not
# fields, so the field path ends before them.
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "function-after",
              "constrained-float", "constrained-int"}


def _field(loc) -> tuple[str, bool]:
  """('options.temperature', whether a union's member was dropped from the path)."""
  parts = []
  for part in loc[1:] if loc and loc[0] == "body" else loc:
    text = str(part)
    if text in _TYPE_TAGS or "[" in text or text.startswith(("function-", "constrained-")):
      return ".".join(parts), True
    parts.append(text)
  return ".".join(parts), False


def describe(errors) -> str:
  """The first validation error as one sentence that names the field; an unknown field
  first, since a misspelt name also makes the intended field look missing."""
  if not errors:
    return "The request is not valid."
  e = sorted(errors, key=lambda e: e.get("type") != "extra_forbidden")[0]
  kind, msg = e.get("type", ""), str(e.get("msg", "invalid value")).rstrip(".")
  if kind == "json_invalid":
    where = e["loc"][1] if len(e.get("loc", ())) > 1 else 0
    return (f"The request body is not valid JSON: {e.get('ctx', {}).get('error', msg)} at "
            f"character {where}.")
  field, union = _field(e.get("loc", ()))
  if not field:
    if kind == "missing":
      return "The request body is missing; expected a JSON object."
    return "The request body must be a JSON object."
  if kind == "extra_forbidden":
    return f"Unknown field '{field}': this API does not take it."
  if kind == "missing":
    return f"Field '{field}' is required."
  if union:
    return f"Field '{field}' has the wrong type: {msg[:1].lower() + msg[1:]}."
  return f"Field '{field}': {msg[:1].lower() + msg[1:]}."


def _error(request: fastapi.Request, status: int, message: str, headers=None):
  return responses.JSONResponse(limits.error_body(request.url.path, status, message),
                                status_code=status, headers=headers)


def install_error_handlers(app: fastapi.FastAPI) -> None:

  @app.exception_handler(exceptions.RequestValidationError)
  async def invalid(request, e):
    return _error(request, 400, describe(e.errors()))

  @app.exception_handler(services_lib.RequestError)
  async def refused(request, e):
    return _error(request, e.status, e.message)

  @app.exception_handler(worker.Busy)
  async def busy(request, e):
    return _error(request, 503, str(e), {"Retry-After": "1"})

  @app.exception_handler(ConnectionAbortedError)
  async def gone(request, e):
    del e
    return _error(request, 499, "The client disconnected before the answer was ready.")

  @app.exception_handler(starlette_exceptions.HTTPException)
  async def http(request, e):
    message = e.detail if isinstance(e.detail, str) else str(e.detail)
    if e.status_code == 404 and message == "Not Found":
      message = f"No route {request.method} {request.url.path}."
    elif e.status_code == 405:
      message = f"{request.url.path} does not take {request.method}."
    elif not message.endswith("."):
      message += "."
    return _error(request, e.status_code, message, getattr(e, "headers", None))

  @app.exception_handler(Exception)
  async def failed(request, e):
    # Starlette answers this one outside every middleware, the guard's headers included.
    headers = {k.decode(): v.decode() for k, v in limits.headers_for(request.url.path)}
    return _error(request, 500, limits.failure(e, f"{request.method} {request.url.path}"),
                  headers)


def create_app(settings: Settings, services: services_lib.Services | None = None
               ) -> fastapi.FastAPI:
  """The app: Ollama's API, OpenAI's API and the web UI, all behind the optional key."""
  services = services or services_lib.Services(settings)
  # The docs are off unless asked for: Swagger UI would load from a CDN into the origin whose
  # localStorage holds the UI's key. app.openapi() gives the schema either way.
  docs = {} if settings.docs else {"docs_url": None, "redoc_url": None, "openapi_url": None}
  app = fastapi.FastAPI(title="BookForAI local server", version=ollama_api.VERSION,
                        description=DESCRIPTION,
                        dependencies=[fastapi.Depends(auth.require_key(settings.api_key))],
                        **docs)
  app.state.services = services
  install_error_handlers(app)
  hosts = limits.HostPolicy(settings.host, settings.allowed_hosts, settings.origins)
  app.add_middleware(limits.Guard, max_body_bytes=settings.max_body_bytes,
                     max_upload_bytes=settings.max_upload_bytes, api_key=settings.api_key,
                     hosts=hosts, docs=settings.docs)
  app.include_router(ollama_api.router(services))
  app.include_router(models_api.router(services))
  app.include_router(openai_api.router(services))
  app.include_router(web.router(services))
  return app
