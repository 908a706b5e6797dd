"""The guard in front of every route: the Host allow-list (DNS rebinding), other sites'
pages refused, the key before any body, bodies counted on every path, JSON whatever the
Content-Type says, security headers; and the error object each API's clients parse."""

import json

import httpx
import pytest
import starlette.testclient

from research.serve import limits
from tests.serve.conftest import KEY
from tests.serve.test_app import AUTH
from tests.serve.test_app import Body
from tests.serve.test_app import call_asgi
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


def _client(**options):
  guard = limits.Guard(_echo, max_body_bytes=100, max_upload_bytes=10, **options)
  return starlette.testclient.TestClient(guard, base_url="http://127.0.0.1:11434")


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
  assert client.post("/ui/upload", content=b"y" * (10 + limits.FORM_SLACK_BYTES + 1)
                     ).status_code == 413


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


def test_a_listed_origin_gets_cors_and_its_preflight_needs_no_key():
  client = _client(api_key="sesame", hosts=limits.HostPolicy(origins=("http://localhost:*",)))
  ask = {"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST",
         "Access-Control-Request-Headers": "authorization, content-type"}
  preflight = client.options("/api/chat", headers=ask)
  assert preflight.status_code == 204
  assert preflight.headers["access-control-allow-origin"] == "http://localhost:3000"
  assert "Authorization" in preflight.headers["access-control-allow-headers"]
  r = client.post("/api/chat", content=b"{}", headers={"Origin": "http://localhost:3000",
                                                        "Authorization": "Bearer sesame"})
  assert r.status_code == 200 and r.headers["access-control-allow-origin"] == (
      "http://localhost:3000")
  assert client.post("/api/chat", headers={"Origin": "http://localhost:3000"}).status_code == 401
  other = client.options("/api/chat", headers=dict(ask, Origin="http://evil.test"))
  assert other.status_code == 403 and "access-control-allow-origin" not in other.headers
  same = client.get("/api/tags", headers={"Origin": "http://127.0.0.1:11434",
                                          "Authorization": "Bearer sesame"})
  assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


def test_other_sites_pages_are_refused(server):
  r = httpx.get(f"{server.url}/api/tags", headers=dict(AUTH, Origin="http://evil.example"))
  assert r.status_code == 403
  same = httpx.get(f"{server.url}/api/tags", headers=dict(AUTH, Origin=server.url))
  assert same.status_code == 200


# -- Host and Origin ------------------------------------------------------------------------

REBINDING = {"Host": "evil.test:11434", "Origin": "http://evil.test:11434"}


@pytest.mark.parametrize("host", ["127.0.0.1:11434", "localhost:8080", "LOCALHOST", "[::1]:3",
                                  "127.1.2.3", "app.localhost:5", "localhost.", ""])
def test_loopback_hosts_with_any_port_are_allowed(host):
  assert limits.HostPolicy().allows_host(host)


@pytest.mark.parametrize("host", ["evil.test:11434", "evil.test", "127.0.0.1.evil.test",
                                  "localhost.evil.test", "10.0.0.5:11434", "[fe80::1]"])
def test_other_hosts_are_refused_by_default(host):
  assert not limits.HostPolicy().allows_host(host)


def test_the_bound_host_allowed_hosts_and_a_wildcard_bind():
  assert limits.HostPolicy("192.168.1.5").allows_host("192.168.1.5:11434")
  assert not limits.HostPolicy("192.168.1.5").allows_host("192.168.1.6:11434")
  assert limits.HostPolicy("mybox.lan").allows_host("MyBox.lan:80")
  everywhere = limits.HostPolicy("0.0.0.0")
  assert everywhere.allows_host("10.0.0.5:11434") and everywhere.allows_host("[fe80::1]:1")
  assert not everywhere.allows_host("evil.test:11434")  # a name can be rebound; an address not
  proxied = limits.HostPolicy(allowed_hosts=("llm.example.com:443", "*.corp.example"))
  assert proxied.allows_host("llm.example.com") and proxied.allows_host("a.corp.example:8")
  assert not proxied.allows_host("evil.test") and not proxied.allows_host("corp.example")
  assert limits.HostPolicy(allowed_hosts=("*",)).allows_host("evil.test:11434")


def test_an_origin_must_be_the_server_s_own_or_listed():
  policy = limits.HostPolicy()
  assert policy.allows_origin("http://127.0.0.1:11434", "127.0.0.1:11434")
  assert policy.allows_origin("http://localhost:11434", "LOCALHOST:11434")
  assert not policy.allows_origin("http://localhost:3000", "localhost:11434")  # another port
  assert not policy.allows_origin("http://evil.test:11434", "evil.test:11434")  # rebinding
  assert not policy.allows_origin("null", "localhost:11434")
  listed = limits.HostPolicy(origins=("http://localhost:3000", "https://*.example.com",
                                      "http://127.0.0.1:*"))
  assert listed.allows_origin("http://localhost:3000", "localhost:11434")
  assert listed.allows_origin("https://app.example.com", "localhost:11434")
  assert listed.allows_origin("http://127.0.0.1:5173", "localhost:11434")
  assert listed.allows_origin("http://127.0.0.1", "localhost:11434")
  assert not listed.allows_origin("http://localhost:3001", "localhost:11434")
  assert not listed.allows_origin("http://app.example.com", "localhost:11434")  # scheme
  assert not listed.allows_origin("https://evil.test/.example.com", "localhost:11434")
  assert limits.HostPolicy(origins=("*",)).allows_origin("http://evil.test", "localhost:1")


@pytest.mark.parametrize("method, path", [("get", "/api/tags"), ("get", "/v1/models"),
                                          ("get", "/ui/kb/notes"), ("get", "/ui/jobs"),
                                          ("post", "/ui/kb/notes/ingest"), ("get", "/"),
                                          ("get", "/static/app.js")])
def test_a_rebinding_page_is_refused_everywhere(server, method, path):
  """A page at http://evil.test:11434 whose name now resolves to 127.0.0.1: its requests
  carry the key it may have stolen nowhere, but even with the key they must not pass."""
  for headers in (REBINDING, {"Host": "evil.test:11434"}):
    r = httpx.request(method, f"{server.url}{path}", headers=dict(AUTH, **headers))
    assert r.status_code == 403, (path, r.text)
    message = r.json()["error"]["message"] if path.startswith("/v1/") else (
        r.json()["error"] if path.startswith("/api/") else r.json()["detail"])
    assert "'evil.test'" in message and one_sentence(message), message


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_loopback_names_with_the_server_s_port_are_served(server, host):
  netloc = f"{host}:{server.port}"
  r = httpx.get(f"{server.url}/api/tags", headers=dict(AUTH, Host=netloc,
                                                        Origin=f"http://{netloc}"))
  assert r.status_code == 200, r.text


def test_allowed_hosts_and_origins_are_honoured():
  proxied = limits.HostPolicy(allowed_hosts=("llm.example.com",),
                              origins=("http://localhost:3000",))
  client = _client(hosts=proxied)
  assert client.get("/api/tags", headers={"Host": "llm.example.com"}).status_code == 200
  assert client.get("/api/tags", headers={"Origin": "http://localhost:3000"}).status_code == 200
  assert client.get("/api/tags", headers={"Host": "evil.test"}).status_code == 403
  assert client.get("/api/tags", headers={"Origin": "http://localhost:3001"}).status_code == 403
  assert _client().get("/api/tags", headers={"Host": "llm.example.com"}).status_code == 403


# -- the key before the body, and bodies counted on every path -------------------------------

async def _reads_everything(scope, receive, send):
  """An app that reads its whole body before answering (as FastAPI does)."""
  del scope
  while (await receive()).get("more_body"):
    pass
  await send({"type": "http.response.start", "status": 200, "headers": []})
  await send({"type": "http.response.body", "body": b"{}"})


@pytest.mark.parametrize("path", ["/api/chat", "/v1/embeddings", "/ui/kb/notes/documents"])
def test_without_the_key_nothing_of_the_body_is_read(path):
  guard = limits.Guard(_reads_everything, max_body_bytes=1 << 20, max_upload_bytes=8 << 20,
                       api_key="sesame")
  body = Body()
  status, _, _ = call_asgi(guard, path, {}, body)
  assert status == 401 and body.read == 0
  body = Body(4)
  status, _, _ = call_asgi(guard, path, {"Authorization": "Bearer sesame"}, body)
  assert status == 200 and body.read == 4


@pytest.mark.parametrize("path, limit", [("/api/chat", 1 << 20), ("/v1/embeddings", 1 << 20),
                                         ("/ui/kb/notes/documents",
                                          (8 << 20) + limits.FORM_SLACK_BYTES)])
def test_a_chunked_body_stops_being_read_at_the_limit(path, limit):
  guard = limits.Guard(_reads_everything, max_body_bytes=1 << 20, max_upload_bytes=8 << 20)
  body = Body()  # endless, with no Content-Length
  status, _, answer = call_asgi(guard, path, {}, body)
  assert status == 413 and str(limit) in json.dumps(answer)
  assert body.read == limit // (64 << 10) + 1  # the piece that passed the limit, no more


def test_an_upload_over_the_limit_stops_early_in_the_real_app(tmp_path):
  """The UI's upload route parses multipart itself; the guard still stops it at the limit
  instead of letting the whole file be spooled first."""
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve.settings import Settings  # pylint: disable=g-import-not-at-top
  settings = Settings(work_dir=tmp_path, api_key=KEY, max_upload_bytes=1 << 20)
  app = app_lib.create_app(settings)
  client = starlette.testclient.TestClient(app, base_url="http://127.0.0.1")
  assert client.post("/ui/kb", json={"name": "docs"}, headers=AUTH).status_code == 200
  head = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
          b"Content-Type: text/plain\r\n\r\n")
  body = Body(piece=head + b"x" * ((64 << 10) - len(head)))
  status, headers, answer = call_asgi(app, "/ui/kb/docs/documents", dict(
      AUTH, **{"content-type": "multipart/form-data; boundary=b"}), body)
  assert status == 413 and one_sentence(answer["detail"]), answer
  limit = settings.max_upload_bytes + limits.FORM_SLACK_BYTES
  assert body.read == limit // (64 << 10) + 1
  assert headers[b"x-content-type-options"] == b"nosniff"
  assert not list((tmp_path / "kb" / "docs").rglob("big.txt"))


def _chunked(total_bytes, piece=1 << 20):
  yield b'{"model": "m", "prompt": "'
  for _ in range(total_bytes // piece):
    yield b"a" * piece
  yield b'"}'


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/ui/kb"])
def test_a_chunked_12_mib_body_without_the_key_is_401(server, path):
  r = httpx.post(f"{server.url}{path}", content=_chunked(12 << 20), timeout=60)
  assert r.status_code == 401, r.text


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/ui/kb"])
def test_a_chunked_body_over_the_limit_with_the_key_is_413(server, path):
  r = httpx.post(f"{server.url}{path}", content=_chunked(12 << 20), headers=AUTH, timeout=60)
  assert r.status_code == 413, r.text


# -- headers on every answer ------------------------------------------------------------------

@pytest.mark.parametrize("path, key", [("/", False), ("/static/app.js", False),
                                       ("/api/tags", True), ("/api/tags", False),
                                       ("/ui/info", True), ("/v1/nothing", True)])
def test_every_answer_carries_the_security_headers(server, path, key):
  r = httpx.get(f"{server.url}{path}", headers=AUTH if key else {})
  assert r.headers["x-frame-options"] == "DENY", path
  assert r.headers["x-content-type-options"] == "nosniff"
  assert r.headers["referrer-policy"] == "no-referrer"
  assert "default-src 'self'" in r.headers["content-security-policy"]
  assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
  assert KEY not in r.text
