"""The server's models by name: what each loads (a source and an adapter for
research.load_model) and what it adds to a request (a system prompt, a chat template,
default sampling parameters).

  models = Registry(settings.model, settings.adapter, settings.work_dir)
  models.names()                 # packaged, --model, one "ft-<job>" per export, then created
  models.get("ft-20260101-000000-aaaaaa").source   # -> ".../jobs/<job>/export"
  models.create("mario", from_="ft-...", system="You are Mario.")   # kept in models.json

Four kinds: "packaged" (research/pretrained.py's), "served" (--model), "export" (a fine-tune
job's export/ folder, found anew on each look so a fresh export shows up at once) and
"created" (/api/create or /api/copy; persisted atomically in work_dir/models.json). Only
created ones can be replaced or deleted.
"""

import dataclasses
import json
import re
import threading
from pathlib import Path

from research import files
from research import pretrained
from research.serve import jobs as jobs_lib

STATE_FILE = "models.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
# Ollama's templates are Go text/template ("{{ .Prompt }}"); ours are Jinja chat templates.
_GO_TEMPLATE = re.compile(r"\{\{-?\s*\.")


@dataclasses.dataclass(frozen=True)
class Entry:
  name: str
  source: str                        # what research.load_model takes
  adapter: str | None = None         # a PEFT LoRA folder put on it, unmerged
  system: str | None = None          # the system message when a request sends none
  template: str | None = None        # a Jinja chat template in place of the tokenizer's
  parameters: dict = dataclasses.field(default_factory=dict)  # default Ollama options
  kind: str = "created"

  def with_system(self, messages: list[dict]) -> list[dict]:
    """The conversation with this model's system message first, unless it has its own."""
    if not self.system or any(m["role"] == "system" for m in messages):
      return messages
    return [{"role": "system", "content": self.system}] + messages

  def load_key(self) -> tuple:
    """What makes two entries the same model in memory."""
    return self.source, self.adapter, self.template


def bare(name: str) -> str:
  return (name or "").removesuffix(":latest")


def check_name(name, field: str = "model") -> str:
  if not isinstance(name, str) or not _NAME.fullmatch(bare(name)) or name.startswith("kb/"):
    raise ValueError(f"{field}: {name!r} is not a model name; use letters, digits and "
                     "'.', '_', '-', ':', '/' (up to 128, not starting with 'kb/').")
  return bare(name)


def check_template(template: str | None) -> str | None:
  if template and _GO_TEMPLATE.search(template):
    raise ValueError("template: this server renders Jinja chat templates (a tokenizer's "
                     "chat_template), not Ollama's Go templates.")
  return template or None


class Registry:

  def __init__(self, model: str, adapter: str | None, work_dir):
    self.model, self.adapter = model, adapter
    self.work_dir = Path(work_dir)
    self._lock = threading.Lock()
    self._created = self._read()

  @property
  def state_file(self) -> Path:
    return self.work_dir / STATE_FILE

  def _read(self) -> dict[str, Entry]:
    try:
      raw = json.loads(self.state_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
      return {}
    except ValueError as e:
      raise ValueError(f"{self.state_file}: not a JSON object of models ({e}).") from None
    fields = {f.name for f in dataclasses.fields(Entry)}
    return {name: Entry(**{k: v for k, v in entry.items() if k in fields}, name=name,
                        kind="created")
            for name, entry in raw.items()}

  def _write(self) -> None:
    files.write_json(self.state_file, {
        name: {k: v for k, v in dataclasses.asdict(e).items() if k not in ("name", "kind")}
        for name, e in self._created.items()})

  def built_in(self) -> dict[str, Entry]:
    """The packaged models, --model, and every finished export under work_dir/jobs."""
    out = {name: Entry(name, name, kind="packaged") for name in pretrained.PACKAGED}
    out[self.model] = Entry(self.model, self.model, self.adapter, kind="served")
    root = self.work_dir / "jobs"
    if root.is_dir():
      for job_dir in sorted(root.iterdir()):
        if jobs_lib.tuned_source(job_dir) == "export" and (job_dir / "job.json").is_file():
          name = jobs_lib.export_model_name(job_dir.name)
          out[name] = Entry(name, str(job_dir / "export"), kind="export")
    return out

  def entries(self) -> list[Entry]:
    """--model first, then the packaged models, the exports and the created ones (by name)."""
    found = self.built_in()
    with self._lock:
      found.update({n: e for n, e in sorted(self._created.items()) if n not in found})
    served = found.pop(self.model)
    return [served] + list(found.values())

  def names(self) -> list[str]:
    return [e.name for e in self.entries()]

  def get(self, name: str) -> Entry:
    """The entry `name` (":latest" ignored; --model also by its folder's name); LookupError
    for one this server does not have."""
    wanted = bare(name)
    for entry in self.entries():
      if wanted == entry.name or (entry.kind == "served" and wanted == Path(entry.name).name):
        return entry
    raise LookupError(f"model {name!r} not found; this server has "
                      f"{', '.join(repr(n) for n in self.names())}.")

  def create(self, name: str, from_: str, adapter: str | None = None, system=None,
             template=None, parameters: dict | None = None) -> Entry:
    """A created model `name` from a registered name, a .gguf file or an HF model folder;
    ValueError for a name a built-in model holds or a source that is none of these."""
    name = check_name(name)
    if name in self.built_in():
      raise ValueError(f"model: {name!r} is a model this server has built in; pick another "
                       "name.")
    try:
      base = self.get(from_)
    except LookupError:
      base = Entry(name, _local_model(from_))
    if adapter is not None and base.adapter is not None:
      raise ValueError(f"adapter: {from_!r} already carries an adapter; merge it first "
                       "(python -m experiments.export).")
    if adapter is not None and not (Path(adapter) / "adapter_config.json").is_file():
      raise ValueError(f"adapter: {adapter} is not a PEFT adapter folder (no "
                       "adapter_config.json).")
    entry = Entry(name, base.source, adapter or base.adapter,
                  system if system is not None else base.system,
                  check_template(template) or base.template,
                  {**base.parameters, **(parameters or {})})
    with self._lock:
      self._created[name] = entry
      self._write()
    return entry

  def copy(self, source: str, destination: str) -> Entry:
    entry = self.get(source)
    return self.create(destination, entry.name)

  def delete(self, name: str) -> None:
    entry = self.get(name)
    if entry.kind != "created":
      raise ValueError({
          "packaged": f"model: {entry.name!r} is packaged with this server and cannot be "
                      "deleted.",
          "served": f"model: {entry.name!r} is the model this server was started with "
                    "(--model) and cannot be deleted.",
          "export": f"model: {entry.name!r} is a fine-tune job's export; delete the job on "
                    "the fine-tune page instead."}[entry.kind])
    with self._lock:
      del self._created[entry.name]
      self._write()


def _local_model(source: str) -> str:
  """`source` when it names a .gguf file or an HF model folder (config.json); else
  ValueError naming it."""
  path = Path(source or "").expanduser()
  if path.is_file() and path.suffix == ".gguf":
    return str(path.resolve())
  if path.is_dir() and (path / "config.json").is_file():
    return str(path.resolve())
  raise ValueError(f"from: {source!r} is neither a model of this server nor a local .gguf "
                   "file or model folder (with config.json).")


def is_go_template(template: str | None) -> bool:
  return bool(template and _GO_TEMPLATE.search(template))


def _unquote(value: str) -> str:
  if len(value) >= 2 and value[0] == value[-1] == '"':
    try:
      return json.loads(value)
    except ValueError:
      return value[1:-1]
  return value


def parse_modelfile(text: str, base_dir=None) -> dict:
  """Ollama's Modelfile: FROM, ADAPTER, SYSTEM, TEMPLATE, PARAMETER (stop may repeat),
  LICENSE (kept out), each value on its line or in triple quotes over several; a relative
  path in FROM or ADAPTER is taken from `base_dir` (the Modelfile's folder, else the
  server's working folder). Returns {"from", "adapter", "system", "template",
  "parameters"}; ValueError names the line of a MESSAGE or an unknown instruction."""
  out: dict = {"parameters": {}}
  lines = text.splitlines()
  i = 0
  while i < len(lines):
    number, line = i + 1, lines[i].strip()
    i += 1
    if not line or line.startswith("#"):
      continue
    word, _, value = line.partition(" ")
    word, value = word.upper(), value.strip()
    if value.startswith('"""'):
      value = value[3:]
      while '"""' not in value and i < len(lines):
        value += "\n" + lines[i]
        i += 1
      if '"""' not in value:
        raise ValueError(f"modelfile line {number}: its triple-quoted {word} never ends.")
      value = value[:value.index('"""')]
    else:
      value = _unquote(value)
    if word in ("FROM", "ADAPTER"):
      if value.startswith((".", "/", "~")):
        value = str((Path(base_dir or ".") / Path(value).expanduser()).resolve())
      out[word.lower()] = value
    elif word in ("SYSTEM", "TEMPLATE"):
      out[word.lower()] = value
    elif word == "PARAMETER":
      key, _, raw = value.partition(" ")
      raw = _unquote(raw.strip())
      if key == "stop":
        out["parameters"].setdefault("stop", []).append(raw)
      else:
        out["parameters"][key] = raw
    elif word == "LICENSE":
      continue
    elif word == "MESSAGE":
      raise ValueError(f"modelfile line {number}: MESSAGE is not supported here; send the "
                       "conversation with each chat instead.")
    else:
      raise ValueError(f"modelfile line {number}: {word!r} is not a Modelfile instruction "
                       "(FROM, ADAPTER, SYSTEM, TEMPLATE, PARAMETER, LICENSE).")
  return out
