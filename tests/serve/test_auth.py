"""The optional API key: with one set, only `Authorization: Bearer <key>` gets through, and a
wrong one of any bytes is a 401."""

import fastapi
import httpx
import pytest
import starlette.testclient

from research.serve import auth


def _client(api_key):
  app = fastapi.FastAPI(dependencies=[fastapi.Depends(auth.require_key(api_key))])
  app.get("/ping")(lambda: {"ok": True})
  return starlette.testclient.TestClient(app)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic sesame", "sesame",
                                    "Bearer sesame2", "Bearer"])
def test_a_missing_or_wrong_key_is_401(header):
  r = _client("sesame").get("/ping", headers={"Authorization": header} if header else {})
  assert r.status_code == 401 and "Authorization: Bearer <key>" in r.json()["detail"]


@pytest.mark.parametrize("header", ["Bearer sesame", "bearer sesame", "Bearer  sesame "])
def test_the_right_key_passes_whatever_the_scheme_case(header):
  assert _client("sesame").get("/ping", headers={"Authorization": header}).json() == {"ok": True}


def test_without_a_key_every_request_passes():
  assert _client(None).get("/ping").status_code == 200


@pytest.mark.parametrize("header", ["Bearer s\u00e9same".encode("utf-8"), b"Bearer \xff\xfe",
                                    "Bearer s\u00e9same".encode("latin-1")])
def test_a_non_ascii_token_is_401_not_500(header):
  r = _client("sesame").get("/ping", headers={"Authorization": header})
  assert r.status_code == 401, r.text


def test_a_non_ascii_key_matches_its_utf8_bytes():
  assert auth.key_matches("Bearer s\u00e9same".encode("utf-8"), "s\u00e9same")
  assert not auth.key_matches(b"Bearer s\xe9same", "s\u00e9same")
  assert not auth.key_matches(None, "sesame") and not auth.key_matches(b"Bearer ", "sesame")


def test_a_non_ascii_token_is_401_through_the_server(server):
  r = httpx.get(f"{server.url}/api/tags", headers={"Authorization": b"Bearer t\xc3\xa9st"})
  assert r.status_code == 401 and r.json()["error"].startswith("Missing or wrong API key")


@pytest.mark.parametrize("path", ["/api/tags", "/v1/models", "/ui/info", "/api/nothing",
                                  "/openapi.json", "/docs"])
def test_every_route_but_the_page_needs_the_key(server, path):
  assert httpx.get(f"{server.url}{path}").status_code == 401, path
