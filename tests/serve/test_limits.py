"""The guard in front of every route: body limits, JSON whatever the Content-Type says, other
sites' pages refused; and the error object each API's clients parse."""

import json

import httpx
import starlette.testclient

from research.serve import limits
from tests.serve.test_app import AUTH
from tests.serve.test_app import one_sentence
from tests.serve.test_app import post


async def _echo(scope, receive, send):
  """An app that answers with the Content-Type and body it was given."""
  message = await receive()
  body = json.dumps({"type": dict(scope["headers"]).get(b"content-type", b"").decode(),
                     "body": message.get("body", b"").decode()}).encode()
  await send({"type": "http.response.start", "status": 200,
              "headers": [(b"content-type", b"application/json")]})
  await send({"type": "http.response.body", "body": body})


def _client():
  return starlette.testclient.TestClient(limits.Guard(_echo, max_body_bytes=100,
                                                      max_upload_bytes=10))


def test_error_bodies_have_each_api_s_shape():
  assert limits.error_body("/api/chat", 413, "Too big.") == {"error": "Too big."}
  assert limits.error_body("/v1/models", 401, "No key.") == {"error": {
      "message": "No key.", "type": "authentication_error", "param": None, "code": 401}}
  assert limits.error_body("/v1/chat/completions", 500, "x")["error"]["type"] == "server_error"
  assert limits.error_body("/v1/embeddings", 400, "x")["error"]["type"] == (
      "invalid_request_error")
  assert limits.error_body("/ui/kb", 413, "Too big.") == {"detail": "Too big."}


def test_the_limit_is_per_route_kind_and_the_api_reads_json():
  client = _client()
  ok = client.post("/api/chat", content=b"x" * 100, headers={"Content-Type": "text/plain"})
  assert ok.json() == {"type": "application/json", "body": "x" * 100}
  assert client.post("/api/chat", content=b"x" * 101).status_code == 413
  # Other routes (uploads) get max_upload_bytes plus 1 MiB of form overhead, and keep their type.
  upload = client.post("/ui/upload", content=b"y" * 1000, headers={"Content-Type": "text/plain"})
  assert upload.json()["type"] == "text/plain"
  assert client.post("/ui/upload", content=b"y" * (10 + (1 << 20) + 1)).status_code == 413


def test_a_content_length_that_is_not_a_number_is_400():
  r = _client().post("/api/chat", content=b"{}", headers={"Content-Length": "lots"})
  assert r.status_code == 400 and r.json() == {"error": "The Content-Length header is not a "
                                                         "number."}


def test_curl_style_form_content_type_is_read_as_json(server):
  body = {"model": server.services.model_name, "prompt": "t10", "stream": False,
          "options": {"num_predict": 2}}
  r = post(server, "/api/generate", json.dumps(body),
           headers={"Content-Type": "application/x-www-form-urlencoded"})
  assert r.status_code == 200 and r.json()["done"], r.text


def test_body_over_the_limit_is_413(server):
  limit = server.services.settings.max_body_bytes
  body = json.dumps({"model": "m", "prompt": "t10 " * limit})
  r = post(server, "/api/generate", body)
  assert r.status_code == 413 and one_sentence(r.json()["error"])

  def chunks():  # no Content-Length: the guard counts
    yield b'{"model": "m", "prompt": "'
    for _ in range(limit // 1000 + 1):
      yield b"t10 " * 250
    yield b'"}'
  r = post(server, "/v1/embeddings", chunks())
  assert r.status_code == 413 and one_sentence(r.json()["error"]["message"])


def test_other_sites_pages_are_refused(server):
  r = httpx.get(f"{server.url}/api/tags", headers=dict(AUTH, Origin="http://evil.example"))
  assert r.status_code == 403
  same = httpx.get(f"{server.url}/api/tags", headers=dict(AUTH, Origin=server.url))
  assert same.status_code == 200
