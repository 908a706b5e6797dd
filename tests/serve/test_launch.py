"""The server in a background thread: it serves on a free port while the block lasts; the
start banner says how to reach it without printing the key."""

import socket

import fastapi
import httpx
import pytest

from research.serve import launch
from research.serve.settings import Settings


def test_free_port_can_be_bound():
  port = launch.free_port()
  with socket.socket() as s:
    s.bind(("127.0.0.1", port))


def test_the_thread_serves_inside_the_block_and_stops_after():
  app = fastapi.FastAPI()
  app.get("/ping")(lambda: "pong")
  with launch.ServerThread(app) as server:
    assert httpx.get(f"{server.url}/ping").json() == "pong"
  assert not server.thread.is_alive()
  with pytest.raises(httpx.ConnectError):
    httpx.get(f"{server.url}/ping")


# uvicorn's thread exits with SystemExit when the port is taken; the error we raise is the point.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_server_that_cannot_start_says_where():
  with socket.socket() as taken:
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    with pytest.raises(RuntimeError, match=f"did not start on http://127.0.0.1:{port}"):
      with launch.ServerThread(fastapi.FastAPI(), port=port, start_timeout_s=5):
        pass


@pytest.mark.parametrize("docs", [False, True])
def test_the_banner_never_prints_the_key(docs):
  key = "s3cret-key-value"
  text = launch.usage(Settings(api_key=key, docs=docs), ["notes"])
  assert key not in text
  assert 'Bearer $BOOKFORAI_API_KEY"' in text and "export BOOKFORAI_API_KEY=<your key>" in text
  assert ("/docs" in text) == docs
  assert "Bearer" not in launch.usage(Settings(), [])
