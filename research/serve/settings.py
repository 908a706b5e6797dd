"""What the server is told: `python -m experiments.serve` flags, gathered in one frozen record."""

import dataclasses
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclasses.dataclass(frozen=True)
class Settings:
  model: str = DEFAULT_MODEL          # any source research.load_model takes
  adapter: str | None = None          # a PEFT LoRA adapter folder put on the model
  kb: str | None = None               # an existing knowledge-base folder, served under its name
  host: str = "127.0.0.1"
  port: int = 11434                   # Ollama's port, so its clients find us unchanged
  api_key: str | None = None          # when set: every request needs `Authorization: Bearer <key>`
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
