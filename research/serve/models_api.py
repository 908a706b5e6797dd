"""Ollama's model management on the registry (research.serve.registry): /api/create,
/api/copy, /api/delete, and /api/pull, which only says that models come from local files.

/api/create takes `from` (a model of this server, a local .gguf file or an HF model folder,
such as a fine-tune export), `adapters` (one local PEFT folder), `system`, `template` (a
Jinja chat template), `parameters` (Ollama's option names), and the older `modelfile`
string or `path` to a Modelfile on the server. A Go TEMPLATE in a Modelfile (the kind the
export writes beside its GGUF) is left out: the model's own chat template is used. Uploaded
blobs (`files`, digests in `adapters`), `quantize` and `messages` are refused in one
sentence.
"""

import json
from pathlib import Path
from typing import Any

import fastapi
import pydantic
from fastapi import responses
from starlette.concurrency import run_in_threadpool

from research.serve import ollama_api
from research.serve import registry as registry_lib
from research.serve import services as services_lib


class CreateRequest(ollama_api.Strict):
  model_config = pydantic.ConfigDict(extra="forbid", populate_by_name=True)
  model: str | None = None
  name: str | None = None  # the older spelling of model
  from_: str | None = pydantic.Field(None, alias="from")
  files: dict[str, str] | None = None
  adapters: dict[str, str] | None = None
  template: str | None = None
  license: str | list[str] | None = None
  system: str | None = None
  parameters: dict[str, Any] | None = None
  messages: list[dict[str, Any]] | None = None
  stream: bool | None = None
  quantize: str | None = None
  modelfile: str | None = None
  path: str | None = None


class CopyRequest(ollama_api.Strict):
  source: str
  destination: str


class DeleteRequest(ollama_api.Strict):
  model: str | None = None
  name: str | None = None


class PullRequest(ollama_api.Strict):
  model: str | None = None
  name: str | None = None
  insecure: bool | None = None
  stream: bool | None = None


def _refuse(status: int, message: str):
  raise services_lib.RequestError(status, message)


def checked_parameters(parameters: dict) -> dict:
  """Ollama option names with values of their types (ollama_api.Options); 400 names a bad
  one."""
  try:
    options = ollama_api.Options(**parameters)
  except pydantic.ValidationError as e:
    error = e.errors()[0]
    field = ".".join(str(p) for p in error["loc"][:1])
    if error["type"] == "extra_forbidden":
      _refuse(400, f"parameters.{field}: not an Ollama option.")
    _refuse(400, f"parameters.{field}: {error['msg'][:1].lower() + error['msg'][1:]}.")
  return options.model_dump(exclude_none=True)


def create_fields(body: CreateRequest) -> tuple[dict, list[str]]:
  """What registry.create takes, from the request's fields over its Modelfile's; and the
  status lines that say what was left out."""
  if body.quantize:
    _refuse(400, "quantize: this server does not quantize; export a q8_0 GGUF instead "
            "(python -m experiments.export).")
  if body.files:
    _refuse(400, "files: this server takes no uploaded blobs; name a local .gguf file or "
            "model folder in 'from'.")
  if body.messages:
    _refuse(400, "messages: a model here keeps no conversation; send it with each chat.")
  notes, fields = [], {"parameters": {}}
  if body.path is not None or body.modelfile is not None:
    text, base = body.modelfile, None
    if body.path is not None:
      path = Path(body.path).expanduser()
      try:
        text = path.read_text(encoding="utf-8") if text is None else text
      except OSError as e:
        _refuse(400, f"path: cannot read the Modelfile {body.path} ({e.strerror}).")
      base = path.parent
    try:
      fields = registry_lib.parse_modelfile(text, base)
    except ValueError as e:
      _refuse(400, str(e))
    if registry_lib.is_go_template(fields.get("template")):
      fields.pop("template")
      notes.append("left out the Modelfile's Go TEMPLATE: the model's own chat template is "
                   "used")
  if body.adapters:
    if len(body.adapters) > 1:
      _refuse(400, "adapters: one adapter folder at a time here; merge the others first.")
    folder = next(iter(body.adapters.values()))
    if folder.startswith("sha256:"):
      _refuse(400, "adapters: this server takes no uploaded blobs; give the path of a local "
              "PEFT adapter folder.")
    fields["adapter"] = folder
  for key in ("from_", "system", "template"):
    if getattr(body, key) is not None:
      fields[key.rstrip("_")] = getattr(body, key)
  fields["parameters"] = checked_parameters({**fields["parameters"], **(body.parameters or {})})
  if not fields.get("from"):
    _refuse(400, "from: name the model to build on (a model of this server, a .gguf file or "
            "a model folder), or give a Modelfile with FROM.")
  return fields, notes


def router(services: services_lib.Services) -> fastapi.APIRouter:
  api = fastapi.APIRouter(prefix="/api", tags=["ollama"])
  models = services.registry

  @api.post("/create")
  async def create(body: CreateRequest):
    """A model of the registry from `from` with the request's adapter, system, template and
    parameters: NDJSON status objects ending in {"status": "success"}."""
    name = body.model or body.name
    if not name:
      _refuse(400, "Field 'model' is required.")
    fields, notes = create_fields(body)
    try:
      entry = await run_in_threadpool(
          models.create, name, fields["from"], fields.get("adapter"), fields.get("system"),
          fields.get("template"), fields["parameters"])
    except ValueError as e:
      _refuse(400, str(e))
    lines = ([{"status": note} for note in notes]
             + [{"status": f"using {entry.source}"}, {"status": "writing manifest"},
                {"status": "success"}])
    if body.stream is False:
      return lines[-1]
    return responses.StreamingResponse((json.dumps(line) + "\n" for line in lines),
                                       media_type="application/x-ndjson")

  @api.post("/copy")
  async def copy(body: CopyRequest):
    try:
      await run_in_threadpool(models.copy, body.source, body.destination)
    except LookupError as e:
      _refuse(404, e.args[0])
    except ValueError as e:
      _refuse(400, str(e))
    return {}

  @api.delete("/delete")
  async def delete(body: DeleteRequest):
    name = body.model or body.name
    if not name:
      _refuse(400, "Field 'model' is required.")
    try:
      await run_in_threadpool(models.delete, name)  # a resident copy stays till keep_alive
    except LookupError as e:
      _refuse(404, e.args[0])
    except ValueError as e:
      _refuse(400, str(e))
    return {}

  @api.post("/pull")
  async def pull(body: PullRequest):
    del body
    _refuse(400, "This server has no model library to pull from; models come from local "
            "files here: create one with /api/create from a .gguf file or model folder.")

  return api
