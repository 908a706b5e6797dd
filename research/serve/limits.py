"""Guards in front of every route, as one ASGI middleware:

- body size: an API request (/api/..., /v1/...) over settings.max_body_bytes is refused with
  413 before it is parsed (by its Content-Length, or by counting when it has none); other
  routes (the UI's uploads) are refused over max_upload_bytes plus 1 MiB of form overhead;
- JSON bodies: the API reads its body as JSON whatever Content-Type says, as Ollama does, so
  `curl -d '{...}'` (which says form-urlencoded) works;
- origin: a browser request from another site's page (an Origin header whose host differs
  from the Host header) is refused with 403, so a web page cannot drive the local model.
"""

import json
from urllib.parse import urlsplit

API_PREFIXES = ("/api/", "/v1/")


def _is_api(path: str) -> bool:
  return path.startswith(API_PREFIXES)


def error_body(path: str, status: int, message: str) -> dict:
  """The error object each API's clients parse: Ollama {"error": str}; OpenAI {"error":
  {"message", "type", "code"}}; elsewhere FastAPI's {"detail": str}."""
  if path.startswith("/v1/"):
    kind = ("authentication_error" if status == 401 else "server_error" if status >= 500
            else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": status}}
  if path.startswith("/api/"):
    return {"error": message}
  return {"detail": message}


async def _send_error(send, path: str, status: int, message: str) -> None:
  body = json.dumps(error_body(path, status, message)).encode()
  await send({"type": "http.response.start", "status": status,
              "headers": [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())]})
  await send({"type": "http.response.body", "body": body})


class Guard:

  def __init__(self, app, max_body_bytes: int, max_upload_bytes: int):
    self.app = app
    self.max_body_bytes = max_body_bytes
    self.max_upload_bytes = max_upload_bytes

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    path = scope["path"]
    headers = dict(scope["headers"])
    origin = headers.get(b"origin")
    if origin is not None and urlsplit(origin.decode("latin-1")).netloc != headers.get(
        b"host", b"").decode("latin-1"):
      return await _send_error(send, path, 403, "Requests from other sites' pages are "
                               "refused; call the server from its own pages or a client.")
    api = _is_api(path)
    limit = self.max_body_bytes if api else self.max_upload_bytes + (1 << 20)
    try:
      declared = int(headers.get(b"content-length", b"0"))
    except ValueError:
      return await _send_error(send, path, 400, "The Content-Length header is not a number.")
    if declared > limit:
      return await _send_error(send, path, 413, f"The request body is {declared} bytes, more "
                               f"than this server's limit of {limit}.")
    if not api:
      return await self.app(scope, receive, send)

    body, more = bytearray(), True
    while more:
      message = await receive()
      if message["type"] == "http.disconnect":
        return None
      body += message.get("body", b"")
      more = message.get("more_body", False)
      if len(body) > limit:
        return await _send_error(send, path, 413, f"The request body is more than this "
                                 f"server's limit of {limit} bytes.")
    if scope["method"] in ("POST", "PUT", "PATCH"):
      scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-type"]
                   + [(b"content-type", b"application/json")])
    replayed = False

    async def replay():
      nonlocal replayed
      if not replayed:
        replayed = True
        return {"type": "http.request", "body": bytes(body), "more_body": False}
      return await receive()  # later reads wait for the disconnect, as uvicorn's do

    return await self.app(scope, replay, send)
