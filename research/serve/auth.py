"""The optional API key: `Authorization: Bearer <key>` on every route but the UI's page.

limits.Guard checks it for every request before any body is read; `require_key` is the same
check as a FastAPI dependency, for routers used on their own.
"""

import hmac

import fastapi

MESSAGE = "Missing or wrong API key: send 'Authorization: Bearer <key>'."


def is_open(path: str) -> bool:
  """The UI's page and its static files: they hold nothing but code, so a browser can load
  them and then ask for the key."""
  return path == "/" or path.startswith("/static/")


def key_matches(authorization: bytes | str | None, api_key: str) -> bool:
  """Whether an Authorization header carries the bearer `api_key` (scheme in any case)."""
  if isinstance(authorization, str):
    authorization = authorization.encode("latin-1", "replace")  # how HTTP headers decode
  scheme, _, token = (authorization or b"").partition(b" ")
  # Bytes, so a non-ASCII token is simply wrong; compare_digest so the time taken does not
  # tell how much of a guessed key was right.
  return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(),
                                                              api_key.encode("utf-8"))


def require_key(api_key: str | None):
  """A dependency for every route: 401 unless `Authorization: Bearer <api_key>` (when set)."""

  def check(authorization: str | None = fastapi.Header(default=None)):
    if api_key is not None and not key_matches(authorization, api_key):
      raise fastapi.HTTPException(401, MESSAGE)

  return check
