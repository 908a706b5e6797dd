"""Guards in front of every route, as one ASGI middleware, in the order they apply:

- host: the Host header must name this server: a loopback name or address (localhost,
  *.localhost, 127.0.0.1, [::1]) with any port, the address it is bound to, an IP address
  when it listens on every interface, or one of --allowed_hosts ("*": any). A page on
  another site that rebinds its DNS name to 127.0.0.1 still sends its own name as Host, so
  it is refused with 403 (the DNS-rebinding attack, Ollama's CVE-2024-28224);
- origin: a browser request from a page (an Origin header) is refused with 403 unless the
  page is this server's own (same host and port as Host) or matches one of --origins, so a
  web page elsewhere cannot drive the local model; a listed origin also gets the CORS
  headers (and its OPTIONS preflight an answer without the key) that let its page read the
  answer;
- key: with an API key set, every route but the UI's page and static files needs
  `Authorization: Bearer <key>` (401), checked before any body is read;
- body size: every body is counted as it arrives, declared or chunked: an API request
  (/api/..., /v1/...) over max_body_bytes, anything else (the UI's uploads) over
  max_upload_bytes plus 1 MiB of form overhead, is refused with 413 as soon as the count
  passes the limit; nothing is buffered here;
- JSON bodies: the API reads its body as JSON whatever Content-Type says, as Ollama does, so
  `curl -d '{...}'` (which says form-urlencoded) works;
- headers: every answer carries X-Frame-Options, X-Content-Type-Options, Referrer-Policy and
  a Content-Security-Policy that lets a page load only this server's own files.
"""

import fnmatch
import ipaddress
import json
import logging
import re
import socket

from research.serve import auth

API_PREFIXES = ("/api/", "/v1/")
FORM_SLACK_BYTES = 1 << 20  # multipart boundaries and headers around one uploaded document
WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
# The UI's files come from this server only: no inline script, no CDN, no framing.
CSP = ("default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; "
       "object-src 'none'")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]
# FastAPI's /docs and /redoc pages (only with --docs) load Swagger UI and ReDoc from a CDN.
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")


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


def failure(e: BaseException, what: str = "this request") -> str:
  """The sentence a client reads for an unexpected failure: its type, never its text (which
  can hold server paths); call it inside the `except` so the log gets the traceback."""
  message = getattr(e, "message", None)
  if getattr(e, "status", None) is not None and isinstance(message, str):
    return message  # a RequestError: a refusal already written for the client
  logging.exception("%s failed", what)
  return f"The server failed on {what} ({type(e).__name__}); see its log."


async def _send_error(send, path: str, status: int, message: str) -> None:
  body = json.dumps(error_body(path, status, message)).encode()
  await send({"type": "http.response.start", "status": status,
              "headers": [(b"content-type", b"application/json"),
                          (b"content-length", str(len(body)).encode())]})
  await send({"type": "http.response.body", "body": body})


# -- hosts and origins -----------------------------------------------------------------------

def host_name(netloc: str) -> str:
  """'Evil.test:11434' -> 'evil.test'; '[::1]:80' -> '::1': the name without port or brackets."""
  netloc = netloc.strip().lower()
  if netloc.startswith("["):
    return netloc[1:].partition("]")[0]
  if netloc.count(":") == 1:
    netloc = netloc.partition(":")[0]
  return netloc.rstrip(".")


def _ip(name: str):
  try:
    return ipaddress.ip_address(name)
  except ValueError:
    return None


def is_loopback(name: str) -> bool:
  """localhost, *.localhost (which browsers never resolve elsewhere) or a loopback address."""
  name = host_name(name)
  ip = _ip(name)
  return name == "localhost" or name.endswith(".localhost") or (ip is not None and
                                                                 ip.is_loopback)


class HostPolicy:
  """Which Host headers and Origins this server answers; see the module docstring."""

  def __init__(self, bound_host: str = "127.0.0.1", allowed_hosts=(), origins=()):
    bound = host_name(bound_host)
    self.wildcard = bound_host.strip() in WILDCARD_HOSTS
    self.names = {bound} if not self.wildcard else {socket.gethostname().lower()}
    self.patterns = [host_name(h) for h in allowed_hosts if h.strip()]  # ports ignored
    self.origins = [_origin_pattern(o) for o in origins if o.strip()]

  def allows_host(self, host: str) -> bool:
    name = host_name(host)
    if not name or is_loopback(name) or name in self.names:
      return True  # a request without Host comes from a client, not a page
    if self.wildcard and _ip(name) is not None:
      return True  # an address cannot be rebound; the server answers on each of them
    return any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

  def listed(self, origin: str) -> bool:
    """Whether --origins names this origin (then the browser also gets CORS headers)."""
    origin = origin.strip().lower().rstrip("/")
    return any(p.fullmatch(origin) for p in self.origins)

  def allows_origin(self, origin: str, host: str) -> bool:
    if self.listed(origin):
      return True
    origin = origin.strip().lower().rstrip("/")
    scheme, _, netloc = origin.partition("://")
    return scheme in ("http", "https") and netloc == host.strip().lower() and (
        self.allows_host(netloc))


def _origin_pattern(origin: str) -> re.Pattern:
  """'http://localhost:*' -> a regex; '*' stands for a port, for host labels
  ('https://*.example.com'), or alone for any origin."""
  origin = origin.strip().lower().rstrip("/")
  if origin == "*":
    return re.compile(r".*")
  any_port = origin.endswith(":*")  # 'http://localhost:*' also takes 'http://localhost'
  if any_port:
    origin = origin[:-2]
  text = re.escape(origin).replace(r"\*", r"[a-z0-9-]+(?:\.[a-z0-9-]+)*")  # host labels
  return re.compile(text + ("(?::[0-9]+)?" if any_port else ""))


def check_origin_pattern(origin: str) -> None:
  """ValueError unless `origin` looks like 'scheme://host[:port]' or is '*'."""
  if origin.strip() != "*" and not re.fullmatch(r"[a-z][a-z0-9+.-]*://[^/\s]+", origin.strip(),
                                                re.IGNORECASE):
    raise ValueError(f"--origins entry {origin!r}: expected an origin such as "
                     "'http://localhost:3000' (scheme, host and port, no path) or '*'.")


# -- the middleware ---------------------------------------------------------------------------

_PREFLIGHT = object()  # _refusal's answer for a CORS preflight that may proceed


class _TooLarge(Exception):
  """Raised into the app by the counting receive: it stops reading the body at once."""


def headers_for(path: str, docs: bool = False) -> list[tuple[bytes, bytes]]:
  """The security headers of an answer on `path` (app.py's 500s add them too: those are
  written outside this middleware)."""
  if docs and path in DOCS_PATHS:
    return SECURITY_HEADERS  # Swagger UI and ReDoc come from their CDN, with inline script
  return SECURITY_HEADERS + [(b"content-security-policy", CSP.encode())]


class Guard:

  def __init__(self, app, max_body_bytes: int, max_upload_bytes: int,
               api_key: str | None = None, hosts: HostPolicy | None = None,
               docs: bool = False):
    self.app = app
    self.max_body_bytes = max_body_bytes
    self.max_upload_bytes = max_upload_bytes
    self.api_key = api_key
    self.hosts = hosts or HostPolicy()
    self.docs = docs

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    path = scope["path"]
    extra = headers_for(path, self.docs)
    origin = dict(scope["headers"]).get(b"origin")
    if origin is not None and self.hosts.listed(origin.decode("latin-1")):
      extra = extra + [(b"access-control-allow-origin", origin), (b"vary", b"Origin")]
    started = False

    async def send_with_headers(message):
      nonlocal started
      if message["type"] == "http.response.start":
        started = True
        message = dict(message, headers=list(message.get("headers", [])) + extra)
      await send(message)

    refusal = self._refusal(scope)
    if refusal is _PREFLIGHT:
      return await self._preflight(send_with_headers)
    if refusal is not None:
      return await _send_error(send_with_headers, path, *refusal)

    limit = self.max_body_bytes if _is_api(path) else self.max_upload_bytes + FORM_SLACK_BYTES
    received, over = 0, False

    async def counted():
      nonlocal received, over
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > limit:
          over = True
          raise _TooLarge()
      return message

    async def send_unless_over(message):
      if not over:  # past the limit the app's own answer (often a 400 for the cut body) is dropped
        await send_with_headers(message)

    if _is_api(path) and scope["method"] in ("POST", "PUT", "PATCH"):
      scope = dict(scope, headers=[(k, v) for k, v in scope["headers"] if k != b"content-type"]
                   + [(b"content-type", b"application/json")])
    try:
      await self.app(scope, counted, send_unless_over)
    except Exception:  # pylint: disable=broad-except
      if not over:
        raise
    if over and not started:
      await _send_error(send_with_headers, path, 413, f"The request body is more than this "
                        f"server's limit of {limit} bytes.")

  @staticmethod
  async def _preflight(send) -> None:
    """CORS's OPTIONS for an origin that passed: which methods and headers it may send."""
    await send({"type": "http.response.start", "status": 204, "headers": [
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", b"Authorization, Content-Type"),
        (b"access-control-max-age", b"600")]})
    await send({"type": "http.response.body", "body": b""})

  def _refusal(self, scope):
    """(status, sentence) for a request refused before its body is read, _PREFLIGHT for a
    CORS preflight that passed the host and origin checks, else None."""
    path = scope["path"]
    headers = dict(scope["headers"])
    host = headers.get(b"host", b"").decode("latin-1")
    if not self.hosts.allows_host(host):
      return 403, (f"Host {host_name(host)!r} is not this server's; start it with "
                   f"--allowed_hosts={host_name(host)} if a proxy sends that name.")
    origin = headers.get(b"origin")
    if origin is not None and not self.hosts.allows_origin(origin.decode("latin-1"), host):
      return 403, ("Requests from other sites' pages are refused; call the server from its "
                   "own pages, a client, or an origin given in --origins.")
    if (origin is not None and scope["method"] == "OPTIONS" and
        b"access-control-request-method" in headers):
      return _PREFLIGHT  # a browser asks first, without the key, whether it may send one
    if self.api_key is not None and not auth.is_open(path) and not auth.key_matches(
        headers.get(b"authorization"), self.api_key):
      return 401, auth.MESSAGE
    limit = self.max_body_bytes if _is_api(path) else self.max_upload_bytes + FORM_SLACK_BYTES
    try:
      declared = int(headers.get(b"content-length", b"0"))
    except ValueError:
      return 400, "The Content-Length header is not a number."
    if declared > limit:
      return 413, (f"The request body is {declared} bytes, more than this server's limit of "
                   f"{limit}.")
    return None
