"""The optional API key: a FastAPI dependency that refuses a request without the bearer key."""

import hmac

import fastapi


def require_key(api_key: str | None):
  """A dependency for every route: 401 unless `Authorization: Bearer <api_key>` (when set)."""

  def check(authorization: str | None = fastapi.Header(default=None)):
    if api_key is None:
      return
    scheme, _, token = (authorization or "").partition(" ")
    # compare_digest: the time taken must not tell how much of a guessed key was right
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), api_key):
      raise fastapi.HTTPException(401, "Missing or wrong API key: send 'Authorization: Bearer <key>'.")

  return check
