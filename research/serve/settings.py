"""What the server is told: `python -m experiments.serve` flags, gathered in one frozen record.

  settings = Settings(host="0.0.0.0", api_key=api_key_from(flag, file, os.environ))
  settings.check()   # ValueError with one sentence for a setting that would be unsafe or wrong
"""

import dataclasses
import re
from pathlib import Path

from research.serve import limits

DEFAULT_MODEL = "smollm2-135m-instruct"
KEY_ENV = "BOOKFORAI_API_KEY"


@dataclasses.dataclass(frozen=True)
class Settings:
  model: str = DEFAULT_MODEL          # any source research.load_model takes
  adapter: str | None = None          # a PEFT LoRA adapter folder put on the model
  quantized: bool = True              # a GGUF's Q8_0 / Q4_1 weights stay in their blocks
  kb: str | None = None               # an existing knowledge-base folder, served under its name
  host: str = "127.0.0.1"
  port: int = 11434                   # Ollama's port, so its clients find us unchanged
  api_key: str | None = None          # when set: every request needs `Authorization: Bearer <key>`
  insecure_no_key: bool = False       # the user means to serve a non-loopback host without a key
  allowed_hosts: tuple[str, ...] = ()  # Host names beyond loopback and the bound one ("*": any)
  origins: tuple[str, ...] = ()       # browser origins beyond the server's own ('*' wildcards)
  docs: bool = False                  # /docs, /redoc, /openapi.json (Swagger UI from its CDN)
  work_dir: Path = Path("runs/serve")  # knowledge bases made in the UI, uploads, fine-tune jobs
  data_dir: Path = Path("experiments/data/persona")  # dataset_info.json for the fine-tune page
  max_body_bytes: int = 1 << 20       # a JSON request larger than this is refused (413)
  max_upload_bytes: int = 8 << 20     # one uploaded document
  max_prompt_tokens: int = 2048
  max_new_tokens: int = 512           # the cap on max_tokens / num_predict
  queue_size: int = 16                # requests waiting for the generation worker
  # Bounds on the work one request may ask for (each refusal is one sentence).
  kb_writable: bool = False           # may the web UI upload, delete and ingest in the --kb folder
  max_kbs: int = 64                   # knowledge bases on the server; the web UI makes no more
  max_stop: int = 16                  # stop strings in one request
  max_stop_chars: int = 256           # characters in one stop string
  max_embed_inputs: int = 512         # texts in one embedding request
  max_embed_chars: int = 1 << 19      # characters in one embedding request, all texts together
  max_jobs: int = 100                 # fine-tune job folders kept; a start beyond it is refused

  @property
  def kb_root(self) -> Path:
    return self.work_dir / "kb"

  def check(self) -> "Settings":
    """ValueError with one sentence for a key that is empty or an address that would be open
    to the network without one; returns self."""
    if self.api_key is not None and not self.api_key.strip():
      raise ValueError("The API key is empty: give a non-empty --api_key, --api_key_file or "
                       f"{KEY_ENV}, or none to serve without a key.")
    if self.api_key is not None and any(c in self.api_key for c in "\r\n\0"):
      raise ValueError("The API key holds a line break or NUL, which no HTTP header can carry.")
    if not limits.is_loopback(self.host) and self.api_key is None and not self.insecure_no_key:
      raise ValueError(f"--host={self.host} is reachable from the network, so it needs an API "
                       f"key (--api_key_file or {KEY_ENV}), or --insecure_no_key to serve it "
                       "to anyone who can connect.")
    for host in self.allowed_hosts:
      if not re.fullmatch(r"[A-Za-z0-9*.:_\[\]-]+", host.strip()):
        raise ValueError(f"--allowed_hosts entry {host!r}: expected a host name such as "
                         "'example.com' or '*.example.com' (no scheme, no path), or '*'.")
    for origin in self.origins:
      limits.check_origin_pattern(origin)
    return self


def api_key_from(flag: str | None, file: str | None, environ) -> str | None:
  """The key from --api_key, else --api_key_file (its first line), else $BOOKFORAI_API_KEY;
  None when none is given. A file that cannot be read raises OSError naming it."""
  if flag is not None and file is not None:
    raise ValueError("Give the API key once: --api_key or --api_key_file, not both.")
  if flag is not None:
    return flag
  if file is not None:
    lines = Path(file).expanduser().read_text(encoding="utf-8").splitlines()
    if not lines or not lines[0].strip():
      raise ValueError(f"--api_key_file={file}: its first line is empty; put the key there.")
    return lines[0].strip()
  return environ.get(KEY_ENV)
