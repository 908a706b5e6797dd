"""The optional API key: with one set, only `Authorization: Bearer <key>` gets through."""

import fastapi
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
