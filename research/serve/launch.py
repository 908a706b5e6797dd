"""The server in a background thread, for tests, the tour and benchmarks, and the lines that
tell its user how to reach it:

  with launch.ServerThread(create_app(settings, services)) as server:
    requests go to server.url
  print(launch.usage(settings, kb_names))   # experiments/serve.py's start banner
"""

import socket
import threading
import time

import uvicorn

from research.serve import settings as settings_lib


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


def usage(settings: settings_lib.Settings, kb_names: list[str]) -> str:
  """What to paste to talk to the server."""
  url = f"http://{settings.host}:{settings.port}"
  # The key itself is never printed: a banner ends up in logs and scrollback.
  env = settings_lib.KEY_ENV
  auth = f" -H \"Authorization: Bearer ${env}\"" if settings.api_key else ""
  key = f"os.environ['{env}']" if settings.api_key else "'unused'"
  model = settings.model
  docs = f", API docs: {url}/docs" if settings.docs else ""
  lines = [f"BookForAI serving {model} at {url}  (web UI: {url}/{docs})", ""]
  if settings.api_key:
    lines += [f"  the API key is set: export {env}=<your key> in the shell that runs these", ""]
  lines += [
      "  curl" + auth + f" {url}/api/chat -d '{{\"model\": \"{model}\", \"messages\": "
      "[{\"role\": \"user\", \"content\": \"Hello!\"}]}'",
      "  curl" + auth + f" {url}/v1/chat/completions -H 'Content-Type: application/json' -d "
      f"'{{\"model\": \"{model}\", \"messages\": [{{\"role\": \"user\", \"content\": "
      "\"Hello!\"}]}'",
      f"  OLLAMA_HOST={url}" + (f" OLLAMA_API_KEY=${env}" if settings.api_key else "")
      + f" python -c \"import ollama; print(ollama.chat("
      f"model='{model}', messages=[{{'role': 'user', 'content': 'Hello!'}}]).message.content)\"",
      f"  python -c \"import os, openai; c = openai.OpenAI(base_url='{url}/v1', api_key={key}); "
      f"print(c.chat.completions.create(model='{model}', messages=[{{'role': 'user', "
      "'content': 'Hello!'}]).choices[0].message.content)\""]
  for name in kb_names:
    lines.append(f"  knowledge base: model 'kb/{name}' (or \"kb\": \"{name}\"); the answer "
                 "carries \"sources\"")
  return "\n".join(lines)
