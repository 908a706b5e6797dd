"""The web UI: the page at / (chat, knowledge base, fine-tune) and the /ui/ routes it calls.

  GET  /                          the page (static/index.html, app.js, app.css; no build step)
  GET  /ui/info                   model, knowledge bases, upload limit, fine-tune form choices
  POST /ui/kb                     {"name"}: a new, empty knowledge base (409 past max_kbs)
  GET  /ui/kb/{name}              its documents, chunks, ingest progress and "writable"
  POST /ui/kb/{name}/documents    one multipart file (field "file") into its documents folder;
                                  an existing name is 409 unless replace=true (query or form)
  DELETE /ui/kb/{name}/documents/{file}  an ingest that drops its chunks, then the file
  POST /ui/kb/{name}/ingest       ingest the documents folder in a background thread (one
                                  ingest at a time on the server: 409 while one runs)
  GET  /ui/kb/{name}/ingest       {"state", "done", "total", "message"}, polled by the page
  POST /ui/jobs                   the fine-tune form: starts a job (400 names a bad field)
  GET  /ui/jobs, /ui/jobs/{id}    state, loss points, last line of stderr, export
  POST /ui/jobs/{id}/stop, /ui/jobs/{id}/export
  POST /ui/jobs/{id}/resume       an interrupted, stopped or failed job trains on from its newest
                                  checkpoint (409 while anything runs in its folder)
  DELETE /ui/jobs/{id}            a job that runs nothing, its folder with it
  POST /ui/jobs/{id}/predict      {"eval_dataset", "max_samples", "max_new_tokens"}: evaluate &
                                  predict with the job's tuned model; its scores and a sample of
                                  predictions come back in the job's status ("predict")

Chat and knowledge-base answers go through the public API (POST /api/chat, with "kb" for an
answer from a knowledge base), so the page uses exactly what other clients use. When the
server has an API key, every /ui/ route needs it; the page keeps it in localStorage. The
--kb folder is read-only here (upload, delete and ingest are 403) unless --kb_writable.
"""

import contextlib
import re
from pathlib import Path

import fastapi
from fastapi import responses
from starlette import formparsers

from research.rag import kb as kb_lib
from research.serve import auth
from research.serve import jobs as jobs_lib

STATIC = Path(__file__).parent / "static"
KB_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # services.kb_dir's rule, checked here too
MULTIPART_SLACK = 16 << 10  # boundary and headers around the one file of an upload


class KnowledgeBases:
  """The knowledge bases of the server by name, as HTTP sees them: research/rag/kb.py does the
  work, this maps names to folders and its errors to status codes."""

  def __init__(self, services):
    self.services = services
    self.ingests = kb_lib.Ingests()

  def dir(self, name: str, create: bool = False) -> Path:
    if not KB_NAME.fullmatch(name or ""):
      raise fastapi.HTTPException(400, f"knowledge base name {name!r}: expected 1 to 64 "
                                  "letters, digits, '-' or '_'.")
    try:
      path = Path(self.services.kb_dir(name))
    except ValueError as e:
      raise fastapi.HTTPException(400, str(e)) from None
    if create:
      kb_lib.create(path)
    elif not path.is_dir():
      raise fastapi.HTTPException(404, f"no knowledge base named {name!r}.")
    return path

  def names(self) -> list[str]:
    """The served knowledge bases and those made here that have no ingest yet."""
    root = Path(self.services.settings.kb_root)
    fresh = [p.name for p in root.iterdir() if KB_NAME.fullmatch(p.name)
             and (p / kb_lib.DOCUMENTS).is_dir()] if root.is_dir() else []
    return sorted(set(self.services.kb_names()) | set(fresh))

  def describe(self, name: str) -> dict:
    return {"name": name, **kb_lib.describe(self.dir(name)), "ingest": self.progress(name),
            "writable": self.writable(name)}

  def writable(self, name: str) -> bool:
    """False for the server's --kb folder (built from the command line, its sources may lie
    anywhere) unless the server was started with --kb_writable."""
    settings = self.services.settings
    if settings.kb_writable or not settings.kb:
      return True
    return Path(self.services.kb_dir(name)).resolve() != Path(settings.kb).resolve()

  def changeable(self, name: str) -> Path:
    """The folder of knowledge base `name`, which the UI may change: 403 when read-only."""
    folder = self.dir(name)
    if not self.writable(name):
      raise fastapi.HTTPException(403, f"knowledge base {name!r} is the server's --kb folder, "
                                  "read-only from the web UI; start the server with "
                                  "--kb_writable to change it here.")
    return folder

  def create(self, name: str) -> Path:
    """A new knowledge base under kb_root (an existing one is kept): 409 past
    settings.max_kbs."""
    names = self.names()
    if name in names:
      return self.dir(name)  # nothing is written into an existing one (the --kb folder)
    limit = self.services.settings.max_kbs
    if KB_NAME.fullmatch(name or "") and len(names) >= limit:
      raise fastapi.HTTPException(409, f"this server already has {limit} knowledge bases, its "
                                  "limit; add documents to one of them instead.")
    return self.dir(name, create=True)

  def progress(self, name: str) -> dict:
    return self.ingests.progress(name)

  def start_ingest(self, name: str) -> dict:
    return self._call(self.ingests.start, name)

  def delete_document(self, name: str, file_name: str) -> dict:
    try:
      return self._call(self.ingests.delete_document, name, file_name)
    except FileNotFoundError:
      raise fastapi.HTTPException(404, f"knowledge base {name!r} has no document "
                                  f"{file_name!r}.") from None

  def _call(self, operation, name: str, *args) -> dict:
    folder = self.changeable(name)
    try:
      return operation(name, folder, *args, self.services.embedder,
                       lambda: self.services.open_kb(name))  # chat answers from the new store
    except kb_lib.Busy as e:
      raise fastapi.HTTPException(409, str(e)) from None
    except ValueError as e:
      raise fastapi.HTTPException(400, str(e)) from None


def _error(status: int, message: str):
  raise fastapi.HTTPException(status, message)


def router(services) -> fastapi.APIRouter:
  settings = services.settings
  from research.rag import extract  # pylint: disable=g-import-not-at-top
  allowed = extract.suffixes()
  kbs = KnowledgeBases(services)
  jobs = jobs_lib.Jobs(Path(settings.work_dir) / "jobs", settings.model, settings.data_dir,
                       max_jobs=settings.max_jobs)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    del app
    yield
    jobs.close()  # no training process outlives the server

  pages = fastapi.APIRouter(lifespan=lifespan)
  ui = fastapi.APIRouter(prefix="/ui", dependencies=[fastapi.Depends(
      auth.require_key(settings.api_key))])
  static_files = {p.name: p for p in STATIC.iterdir() if p.is_file()}

  # Plain Starlette routes: no FastAPI dependency (the API key included) applies to them, so
  # a browser can load the page, which holds nothing but code, and then enter the key.
  def index(request):
    del request
    return responses.FileResponse(STATIC / "index.html", media_type="text/html")

  def static(request):
    name = request.path_params["name"]
    if name not in static_files:
      return responses.JSONResponse({"detail": f"No static file {name!r}."}, status_code=404)
    return responses.FileResponse(static_files[name])

  pages.add_route("/", index, methods=["GET"], include_in_schema=False)
  pages.add_route("/static/{name}", static, methods=["GET"], include_in_schema=False)

  @ui.get("/info")
  def info():
    return {"model": settings.model, "kbs": kbs.names(), "suffixes": list(allowed),
            "max_upload_bytes": settings.max_upload_bytes,
            "datasets": jobs_lib.datasets_for(settings.data_dir, "sft"),
            "preference_datasets": jobs_lib.datasets_for(settings.data_dir, "dpo"),
            "eval_datasets": jobs_lib.eval_datasets(settings.data_dir),
            "predict_form": jobs_lib.PREDICT_DEFAULTS,
            "data_dir": str(settings.data_dir), "form": jobs_lib.FORM_DEFAULTS,
            "choices": {k: list(v) for k, v in jobs_lib.CHOICES.items()}}

  @ui.post("/kb")
  def create_kb(body: dict = fastapi.Body(...)):
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str):
      _error(400, 'expected {"name": "<knowledge base name>"}.')
    kbs.create(name)
    return kbs.describe(name)

  @ui.get("/kb/{name}")
  def describe_kb(name: str):
    return kbs.describe(name)

  @ui.post("/kb/{name}/documents")
  async def upload(name: str, request: fastapi.Request, replace: bool = False):
    folder = kbs.changeable(name)
    limit = settings.max_upload_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + MULTIPART_SLACK:
      _error(413, f"The upload is {int(length)} bytes, over the limit of {limit} bytes per file.")
    try:
      form = await request.form(max_files=1, max_fields=1)
    except formparsers.MultiPartException as e:  # its messages are written for the client
      _error(400, f"expected a multipart form with one file in the field 'file' ({e}).")
    except Exception:  # pylint: disable=broad-except  (a body the parser could not read)
      _error(400, "expected a multipart form with one file in the field 'file'.")
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str):
      _error(400, "expected a multipart form with one file in the field 'file'.")
    replace = replace or str(form.get("replace", "")).lower() in ("true", "1", "yes", "on")
    try:
      file_name = kb_lib.safe_file_name(upload_file.filename, allowed)
    except ValueError as e:
      _error(400, str(e))
    data = await upload_file.read(limit + 1)
    if len(data) > limit:
      _error(413, f"{file_name} is over the limit of {limit} bytes per file.")
    try:
      kb_lib.add_document(folder, file_name, data, allowed, replace=replace)
    except FileExistsError as e:
      _error(409, str(e))
    except ValueError as e:
      _error(400, str(e))
    return {"name": file_name, "bytes": len(data)}

  @ui.delete("/kb/{name}/documents/{file_name}")
  def delete_document(name: str, file_name: str):
    return kbs.delete_document(name, file_name)

  @ui.post("/kb/{name}/ingest")
  def ingest(name: str):
    return kbs.start_ingest(name)

  @ui.get("/kb/{name}/ingest")
  def ingest_progress(name: str):
    kbs.dir(name)
    return kbs.progress(name)

  @ui.post("/jobs")
  def start_job(body: dict = fastapi.Body(...)):
    try:
      job = jobs.start(body)
    except ValueError as e:
      _error(400, str(e))
    except RuntimeError as e:
      _error(409, str(e))
    return jobs.status(job.id)

  @ui.get("/jobs")
  def list_jobs():
    return {"jobs": jobs.list()}

  def job_call(fn, job_id):
    try:
      return fn(job_id)
    except KeyError as e:
      _error(404, e.args[0])
    except RuntimeError as e:
      _error(409, str(e))

  @ui.get("/jobs/{job_id}")
  def job_status(job_id: str):
    return job_call(jobs.status, job_id)

  @ui.post("/jobs/{job_id}/stop")
  def stop_job(job_id: str):
    return job_call(jobs.stop, job_id)

  @ui.post("/jobs/{job_id}/resume")
  def resume_job(job_id: str):
    return job_call(jobs.resume, job_id)

  @ui.delete("/jobs/{job_id}")
  def delete_job(job_id: str):
    return job_call(jobs.delete, job_id)

  @ui.post("/jobs/{job_id}/export")
  def export_job(job_id: str):
    return job_call(jobs.export, job_id)

  @ui.post("/jobs/{job_id}/predict")
  def predict_job(job_id: str, body: dict = fastapi.Body(...)):
    try:
      return job_call(lambda i: jobs.predict(i, body), job_id)
    except ValueError as e:
      _error(400, str(e))

  pages.include_router(ui)
  pages.jobs, pages.kbs = jobs, kbs  # for the server's shutdown and for tests
  return pages
