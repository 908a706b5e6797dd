"""The server in a background thread, for tests, the tour and benchmarks:

  with launch.ServerThread(create_app(settings, services)) as server:
    requests go to server.url
"""

import socket
import threading
import time

import uvicorn


def free_port() -> int:
  """A loopback port nobody listens on right now."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class ServerThread:
  """uvicorn serving `app` on 127.0.0.1 (a free port unless given) while the block lasts."""

  def __init__(self, app, port: int | None = None, start_timeout_s: float = 30.0):
    self.port = port or free_port()
    self.url = f"http://127.0.0.1:{self.port}"
    self.start_timeout_s = start_timeout_s
    self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                log_level="warning"))
    self.thread = threading.Thread(target=self.server.run, daemon=True)

  def __enter__(self):
    self.thread.start()
    deadline = time.monotonic() + self.start_timeout_s
    while not self.server.started:
      if time.monotonic() > deadline or not self.thread.is_alive():
        raise RuntimeError(f"the server did not start on {self.url}")
      time.sleep(0.02)
    return self

  def __exit__(self, *exc):
    self.server.should_exit = True  # the app's shutdown also ends any fine-tune still running
    self.thread.join(30)
