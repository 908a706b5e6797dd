"""The server as a whole: refusals, the queue, disconnects, greedy equality with
experiments/chat.py, and a bounded fuzz of the OpenAPI schema."""

import asyncio
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest
import starlette.testclient

from research.serve import worker as worker_lib
from tests.serve.conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}"}
ROOT = Path(__file__).resolve().parents[2]


def post(server, path, content=None, headers=None, **kwargs):
  return httpx.post(f"{server.url}{path}", content=content, timeout=60,
                    headers=dict(AUTH, **(headers or {})), **kwargs)


def one_sentence(message: str) -> bool:
  return (message.endswith(".") and ". " not in message.rstrip(".") and "\n" not in message
          and "Traceback" not in message)


class Body:
  """An ASGI receive that sends `chunks` pieces of 64 KiB (forever when None), counting what
  was read."""

  def __init__(self, chunks=None, piece=b"x" * (64 << 10)):
    self.chunks, self.piece, self.read = chunks, piece, 0

  async def __call__(self):
    if self.chunks is not None and self.read >= self.chunks:
      await asyncio.sleep(3600)  # a client that sent everything waits for the answer
    self.read += 1
    await asyncio.sleep(0)  # a client's pieces arrive between other work
    return {"type": "http.request", "body": self.piece,
            "more_body": self.chunks is None or self.read < self.chunks}


def call_asgi(app, path, headers, receive, method="POST"):
  """Runs one request through an ASGI app; -> (status, headers, body)."""
  sent = []

  async def send(message):
    sent.append(message)

  scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
           "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
           "server": ("127.0.0.1", 11434), "client": ("127.0.0.1", 5000),
           "headers": [(k.lower().encode(), v.encode() if isinstance(v, str) else v)
                       for k, v in dict({"host": "127.0.0.1:11434"}, **headers).items()]}
  asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
  start = next(m for m in sent if m["type"] == "http.response.start")
  body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
  return start["status"], dict(start["headers"]), json.loads(body)


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate", "/api/embed",
                                  "/v1/chat/completions", "/v1/embeddings"])
@pytest.mark.parametrize("body, says", [
    ("{", "not valid JSON"),
    ("", "body is missing"),
    ("[1, 2]", "must be a JSON object"),
    ('{"model": 5}', "Field 'model'"),
    ('{"model": "m", "bogus": 1}', "Unknown field 'bogus'"),
])
def test_malformed_bodies_get_400_and_one_sentence(server, path, body, says):
  r = post(server, path, body)
  assert r.status_code == 400, r.text
  error = r.json()["error"]
  message = error["message"] if path.startswith("/v1") else error
  assert says in message and one_sentence(message), message


def test_wrong_types_name_the_field(server):
  model = server.services.model_name
  cases = [({"options": {"temperature": "hot"}}, "Field 'options.temperature'"),
           ({"messages": [{"role": "user", "content": 5}]}, "Field 'messages.0.content'"),
           ({"messages": [{"role": "robot", "content": "t1"}]}, "Field 'messages.0.role'"),
           ({"stream": "maybe"}, "Field 'stream'"),
           ({"options": {"stop": 3}}, "Field 'options.stop'"),
           ({"messages": [{"role": "user", "content": "t1", "images": ["aGk="]}]},
            "messages.0.images: this model reads text only"),
           ({"options": {"num_predict": 0}}, "options.num_predict: expected a positive")]
  for extra, says in cases:
    body = dict({"model": model, "messages": [{"role": "user", "content": "t10"}]}, **extra)
    r = post(server, "/api/chat", json.dumps(body))
    assert r.status_code == 400 and r.json()["error"].startswith(says), r.text
    assert one_sentence(r.json()["error"]), r.text


def test_prompt_over_the_token_limit_is_400(server):
  words = " ".join(["t10"] * (server.services.settings.max_prompt_tokens + 1))
  r = post(server, "/api/generate", json.dumps({"model": server.services.model_name,
                                                "prompt": words}))
  assert r.status_code == 400 and "limit" in r.json()["error"], r.text


def test_unknown_route_is_404_with_one_sentence(server):
  r = httpx.get(f"{server.url}/api/nothing", headers=AUTH)
  assert r.status_code == 404 and one_sentence(r.json()["error"])


def test_four_concurrent_streams_all_complete(server):
  model = server.services.model_name
  done_before = server.services.worker.completed

  def ollama_stream(i):
    client = ollama.Client(host=server.url, headers=AUTH)
    parts = list(client.chat(model=model, messages=[{"role": "user", "content": f"t{10 + i}"}],
                             options={"num_predict": 16, "seed": i}, stream=True))
    return parts[-1].done and parts[-1].eval_count >= 1

  def openai_stream(i):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"t{20 + i}"}], max_tokens=16,
        seed=i, stream=True))
    return chunks[-1].choices[0].finish_reason in ("stop", "length")

  with concurrent.futures.ThreadPoolExecutor(4) as pool:
    results = list(pool.map(lambda i: (ollama_stream if i % 2 else openai_stream)(i), range(4)))
  assert results == [True] * 4
  assert server.services.worker.completed - done_before == 4


@pytest.fixture
def slow_generation(monkeypatch):
  """Each token takes 50 ms, so a 32-token answer outlasts a client that leaves early."""
  real = worker_lib.generation

  def slow(*args, **kwargs):
    for item in real(*args, **kwargs):
      time.sleep(0.05)
      yield item
  monkeypatch.setattr(worker_lib, "generation", slow)


@pytest.mark.parametrize("api", ["ollama", "openai"])
def test_a_client_that_leaves_mid_stream_frees_the_worker(server, slow_generation, api):
  del slow_generation
  model = server.services.model_name
  cancelled = server.services.worker.cancelled
  if api == "ollama":
    path, body = "/api/chat", {"model": model, "options": {"num_predict": 32}}
  else:
    path, body = "/v1/chat/completions", {"model": model, "max_tokens": 32, "stream": True}
  body["messages"] = [{"role": "user", "content": "t10"}]
  with httpx.Client(timeout=30, headers=AUTH) as client:
    with client.stream("POST", f"{server.url}{path}", json=body) as r:
      next(r.iter_lines())  # the first piece arrived; now leave
  start = time.perf_counter()
  r = post(server, "/api/generate", json.dumps({"model": model, "prompt": "t11",
                                                "stream": False,
                                                "options": {"num_predict": 2}}))
  took = time.perf_counter() - start
  assert r.status_code == 200 and r.json()["done"]
  # the abandoned answer had about 1.5 s of tokens left; the worker stopped it at once
  assert took < 1.0, took
  assert server.services.worker.cancelled == cancelled + 1


def test_a_full_queue_is_503(server, slow_generation):
  del slow_generation
  model = server.services.model_name
  size = server.services.settings.queue_size
  body = json.dumps({"model": model, "prompt": "t10", "stream": False,
                     "options": {"num_predict": 10}})
  with concurrent.futures.ThreadPoolExecutor(size + 4) as pool:
    codes = list(pool.map(lambda _: post(server, "/api/generate", body).status_code,
                          range(size + 4)))
  assert set(codes) <= {200, 503} and codes.count(200) >= size and 503 in codes


def test_greedy_answer_equals_experiments_chat(server, tiny_llama_dir):
  """The issue's check: `experiments/chat.py --temperature 0` prints what the server says."""
  prompt = "t10 t11 t12 t13"
  budget = server.services.settings.max_new_tokens
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="")
  printed = subprocess.run(
      [sys.executable, "-m", "experiments.chat", f"--model={tiny_llama_dir}",
       f"--prompt={prompt}", "--temperature=0", f"--max_new_tokens={budget}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True).stdout
  client = ollama.Client(host=server.url, headers=AUTH)
  served = client.chat(model=server.services.model_name,
                       messages=[{"role": "user", "content": prompt}],
                       options={"temperature": 0, "num_predict": budget}).message.content
  openai_served = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY).chat.completions.create(
      model=server.services.model_name, messages=[{"role": "user", "content": prompt}],
      temperature=0, max_tokens=budget).choices[0].message.content
  assert len(served.split()) >= 4, served
  assert served.strip() == printed.strip()
  assert openai_served == served


def test_fuzzed_requests_never_get_a_5xx(server):
  """A bounded schemathesis run over every operation of the app's OpenAPI schema, schema-valid
  and schema-breaking bodies alike, from allowed and refused Hosts and Origins, with right and
  wrong keys, then every POST route over its body limit: no 5xx, no traceback in any answer,
  and each refusal the one its headers call for."""
  import hypothesis  # pylint: disable=g-import-not-at-top
  import schemathesis  # pylint: disable=g-import-not-at-top
  from hypothesis import strategies as st  # pylint: disable=g-import-not-at-top
  from schemathesis.generation.modes import GenerationMode  # pylint: disable=g-import-not-at-top
  from research.serve import limits  # pylint: disable=g-import-not-at-top
  app = server.server.config.app
  schema = schemathesis.openapi.from_dict(app.openapi())  # /openapi.json is off by default
  model = server.services.model_name
  port = server.port
  # (headers on top of the key, the status the guard must answer, or None: the route decides)
  variations = [
      ({}, None), ({}, None),
      ({"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}, None),
      ({"Host": f"[::1]:{port}"}, None),
      ({"Host": "evil.test:11434", "Origin": "http://evil.test:11434"}, 403),  # rebinding
      ({"Origin": "http://evil.example"}, 403),
      ({"Authorization": "Bearer wrong"}, 401),
      ({"Authorization": "Bearer t\u00e9st"}, 401)]  # sent as latin-1 bytes
  seen = []

  def check(case, use_model, variation):
    extra, expected = variation
    if use_model and isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
      case.body["model"] = use_model  # otherwise nearly every case is a 404 for the model
    response = case.call(base_url=server.url, headers=dict(AUTH, **extra), timeout=60)
    seen.append(response.status_code)
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    assert "Traceback" not in response.text
    assert expected is None or response.status_code == expected, (extra, response.text)

  for mode, examples in ((GenerationMode.POSITIVE, 120), (GenerationMode.NEGATIVE, 120)):
    @hypothesis.settings(max_examples=examples, deadline=None, derandomize=True,
                         suppress_health_check=list(hypothesis.HealthCheck),
                         phases=[hypothesis.Phase.generate])
    @hypothesis.given(case=schema.as_strategy(mode),
                      use_model=st.sampled_from([None, model, "kb/notes"]),
                      variation=st.sampled_from(variations))
    def run(case, use_model, variation):
      check(case, use_model, variation)
    run()  # pylint: disable=no-value-for-parameter

  settings = server.services.settings
  # Every POST route over its limit, in-process: chunked (counted) and declared. A route that
  # reads no body (stop, ingest) answers before the count can pass the limit.
  posts = sorted((re.sub(r"\{[^}]+\}", "nosuch", path), "requestBody" in item["post"])
                 for path, item in app.openapi()["paths"].items() if "post" in item)
  for path, reads in posts:
    limit = (settings.max_body_bytes if path.startswith(limits.API_PREFIXES)
             else settings.max_upload_bytes + limits.FORM_SLACK_BYTES)
    for headers, expected in [({}, 401), (AUTH, 413 if reads else None),
                              (dict(AUTH, **{"content-length": str(limit + 1)}), 413)]:
      status, _, answer = call_asgi(app, path, headers, Body())
      seen.append(status)
      assert status < 500 and "Traceback" not in json.dumps(answer), (path, answer)
      assert expected is None or status == expected, (path, expected, answer)
  print(sorted(collections.Counter(seen).items()))
  assert len(seen) >= 200 and seen.count(200) >= 20 and 400 in seen and 403 in seen


@pytest.mark.parametrize("docs", [False, True])
def test_the_api_docs_are_off_unless_asked_for_and_then_need_the_key(tmp_path, docs):
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve.settings import Settings  # pylint: disable=g-import-not-at-top
  settings = Settings(work_dir=tmp_path, api_key="sesame", docs=docs)
  client = starlette.testclient.TestClient(app_lib.create_app(settings),
                                           base_url="http://127.0.0.1:11434")
  key = {"Authorization": "Bearer sesame"}
  for path in ("/docs", "/redoc", "/openapi.json"):
    assert client.get(path).status_code == 401, path
    assert client.get(path, headers=key).status_code == (200 if docs else 404), path
  page = client.get("/docs", headers=key)
  assert ("content-security-policy" in page.headers) == (not docs)  # Swagger's CDN and script
  assert page.headers["x-frame-options"] == "DENY"


def test_a_failure_mid_stream_is_one_sentence_without_its_text(server, monkeypatch):
  def broken(*args, **kwargs):
    del args, kwargs
    yield "t1"
    raise OSError("/srv/secret/weights.bin: truncated")
  monkeypatch.setattr(worker_lib, "generation", broken)
  body = {"model": server.services.model_name, "messages": [{"role": "user", "content": "t10"}]}
  ollama_lines = post(server, "/api/chat", json.dumps(body)).text.strip().splitlines()
  openai_events = post(server, "/v1/chat/completions", json.dumps(dict(body, stream=True))).text
  for text, error in [(ollama_lines[-1], json.loads(ollama_lines[-1])["error"]),
                      (openai_events, None)]:
    assert "/srv/secret" not in text and "truncated" not in text, text
    if error is not None:
      assert one_sentence(error) and "OSError" in error, error
  assert '"type": "server_error"' in openai_events


def test_an_unexpected_failure_is_a_500_without_its_text_and_with_the_headers(tmp_path):
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve.settings import Settings  # pylint: disable=g-import-not-at-top
  app = app_lib.create_app(Settings(work_dir=tmp_path))

  def broken():
    raise OSError(f"{tmp_path}/secret/model.bin: unreadable")
  app.state.services.model_names = broken
  client = starlette.testclient.TestClient(app, base_url="http://127.0.0.1:11434",
                                           raise_server_exceptions=False)
  r = client.get("/api/tags")
  assert r.status_code == 500 and one_sentence(r.json()["error"]), r.text
  assert "OSError" in r.text and str(tmp_path) not in r.text and "secret" not in r.text
  assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == (
      "nosniff")
