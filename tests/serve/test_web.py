"""The web UI's routes through the real app: pages, API key, knowledge-base uploads (limits and
path traversal), ingest with progress, and a fine-tune job's whole life on a tiny model."""

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from research.rag import kb
from research.serve import jobs as jobs_lib
from research.serve import web
from tests.rag import documents
from tests.rag.conftest import WordEmbedder
from tests.rag.conftest import gated_embedder
from tests.serve import web_fixtures

LIMIT = 4000  # bytes per uploaded file in these tests
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return web_fixtures.write_citing_model(tmp_path_factory.mktemp("citing") / "model")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return web_fixtures.write_tiny_data(tmp_path_factory.mktemp("data"))


@pytest.fixture
def settings(model_dir, data_dir, tmp_path):
  return web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work",
                                   max_upload_bytes=LIMIT)


@pytest.fixture
def client(settings):
  with TestClient(web_fixtures.make_app(settings)) as c:
    yield c


def wait_for(fetch, until, timeout_s=120.0, every_s=0.25):
  deadline = time.monotonic() + timeout_s
  while True:
    value = fetch()
    if until(value):
      return value
    assert time.monotonic() < deadline, f"timed out; last: {value}"
    time.sleep(every_s)


# -- the page -------------------------------------------------------------------------------

def test_page_and_its_files_are_served(client):
  page = client.get("/")
  assert page.status_code == 200 and "text/html" in page.headers["content-type"]
  for name in ("app.js", "app.css"):
    assert f"/static/{name}" in page.text
    assert client.get(f"/static/{name}").status_code == 200
  assert client.get("/static/missing.js").status_code == 404
  assert client.get("/static/..%2Fweb.py").status_code == 404


def test_page_uses_nothing_from_the_internet():
  for path in web.STATIC.iterdir():
    text = path.read_text()
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", ""), path
    assert "https://" not in text and "//cdn" not in text, path


def test_api_key_guards_every_ui_route_but_not_the_page(model_dir, data_dir, tmp_path):
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path, api_key="sesame")
  with TestClient(web_fixtures.make_app(settings)) as c:
    assert c.get("/").status_code == 200
    assert c.get("/static/app.js").status_code == 200
    for method, path in [("get", "/ui/info"), ("post", "/ui/kb"), ("get", "/ui/jobs"),
                         ("post", "/ui/jobs"), ("post", "/ui/kb/x/ingest")]:
      assert getattr(c, method)(path).status_code == 401, path
      wrong = getattr(c, method)(path, headers={"Authorization": "Bearer nope"})
      assert wrong.status_code == 401, path
    ok = c.get("/ui/info", headers={"Authorization": "Bearer sesame"})
    assert ok.status_code == 200 and ok.json()["datasets"] == ["tiny"]
    assert ok.json()["preference_datasets"] == ["tiny_prefs"]


# -- knowledge bases -------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["", "../x", "a/b", "a b", ".", "..", "x" * 65, "kb.1"])
def test_bad_knowledge_base_names_are_refused(client, settings, name):
  r = client.post("/ui/kb", json={"name": name})
  assert r.status_code == 400 and "name" in r.json()["detail"]
  assert not settings.kb_root.exists() or not any(settings.kb_root.iterdir())


def upload(client, name, filename, data: bytes):
  return client.post(f"/ui/kb/{name}/documents",
                     files={"file": (filename, data, "text/plain")})


@pytest.mark.parametrize("filename, stored", [
    ("notes.txt", "notes.txt"), ("../../x.txt", "x.txt"), ("/etc/passwd.md", "passwd.md"),
    ("..\\..\\win.txt", "win.txt"), ("C:\\Users\\me\\doc.html", "doc.html"),
    ("a/b/../../c.txt", "c.txt")])
def test_uploads_keep_only_the_base_name(client, settings, filename, stored):
  assert client.post("/ui/kb", json={"name": "docs"}).status_code == 200
  r = upload(client, "docs", filename, b"Some text.")
  assert r.status_code == 200, r.text
  assert r.json()["name"] == stored
  written = [p for p in Path(settings.work_dir).rglob("*") if p.is_file()]
  assert written == [settings.kb_root / "docs" / kb.DOCUMENTS / stored]


@pytest.mark.parametrize("filename", ["", ".", "..", "../", "a/..", ".hidden.txt", "..txt",
                                      "x.txt.", "notes.exe", "noext", "a\x00b.txt",
                                      "../../.bashrc"])
def test_uploads_with_bad_names_are_refused(client, settings, filename):
  client.post("/ui/kb", json={"name": "docs"})
  r = upload(client, "docs", filename, b"Some text.")
  assert r.status_code in (400, 422), (filename, r.text)
  assert not [p for p in Path(settings.work_dir).rglob("*") if p.is_file()]


def test_upload_size_limit(client, settings):
  client.post("/ui/kb", json={"name": "docs"})
  assert upload(client, "docs", "full.txt", b"a" * LIMIT).status_code == 200
  r = upload(client, "docs", "over.txt", b"a" * (LIMIT + 1))
  assert r.status_code == 413
  message = r.json()["detail"]
  assert str(LIMIT) in message and message.count(".") <= 2
  big = upload(client, "docs", "huge.txt", b"a" * (LIMIT + 2 * web.MULTIPART_SLACK))
  assert big.status_code == 413
  docs = settings.kb_root / "docs" / kb.DOCUMENTS
  assert sorted(p.name for p in docs.iterdir()) == ["full.txt"]


def test_upload_to_a_missing_knowledge_base_is_404(client):
  assert upload(client, "nowhere", "a.txt", b"x").status_code == 404


def test_ingest_in_the_background_then_list_documents_and_chunks(client):
  client.post("/ui/kb", json={"name": "docs"})
  assert "docs" in client.get("/ui/info").json()["kbs"]
  upload(client, "docs", "adam.md", web_fixtures.DOCUMENT.encode())
  upload(client, "docs", "empty.txt", b"   ")
  started = client.post("/ui/kb/docs/ingest")
  assert started.status_code == 200 and started.json()["state"] in ("reading", "embedding",
                                                                    "done")
  done = wait_for(lambda: client.get("/ui/kb/docs/ingest").json(),
                  lambda p: p["state"] not in ("reading", "embedding"))
  assert done["state"] == "done", done
  assert done["done"] == done["total"] > 0
  assert "1 added" in done["message"] and "empty.txt" in done["message"]
  kb = client.get("/ui/kb/docs").json()
  by_name = {d["name"]: d for d in kb["documents"]}
  assert by_name["adam.md"]["chunks"] == kb["total_chunks"] == done["total"]
  assert by_name["empty.txt"]["chunks"] == 0
  assert "0.999" in " ".join(c["text"] for c in kb["chunks"])
  # the chat API answers from it at once, citing what the page highlights
  lines = [json.loads(s) for s in client.post("/api/chat", json={
      "model": "kb/docs", "stream": True,
      "messages": [{"role": "user", "content": web_fixtures.QUESTION}]}).text.splitlines()]
  answer = "".join(line["message"]["content"] for line in lines)
  assert "[1]" in answer and lines[-1]["done"]
  assert lines[-1]["sources"][0]["n"] == 1


def test_pdf_and_docx_uploads_are_ingested_and_answers_cite_the_page(model_dir, data_dir,
                                                                      tmp_path):
  # python-docx's own template alone is some 36 kB, over the LIMIT of the other tests
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work",
                                       max_upload_bytes=100_000)
  # two short pages, one chunk (tests/rag/test_store.py has chunks of a page each)
  pdf = documents.pdf_bytes([[line] for line in web_fixtures.DOCUMENT.split("\n\n")[:2]])
  docx = documents.write_docx(tmp_path / "sgd.docx", [
      ("heading", "SGD"), ("paragraph", "Plain SGD takes a step against the gradient."),
      ("table", [["optimizer", "state"], ["SGD", "none"]])]).read_bytes()
  with TestClient(web_fixtures.make_app(settings)) as c:
    assert {".pdf", ".docx"} <= set(c.get("/ui/info").json()["suffixes"])
    c.post("/ui/kb", json={"name": "docs"})
    for name, data, mime in (("adam.pdf", pdf, "application/pdf"), ("sgd.docx", docx, DOCX)):
      r = c.post("/ui/kb/docs/documents", files={"file": (name, data, mime)})
      assert r.status_code == 200 and r.json() == {"name": name, "bytes": len(data)}, r.text
    c.post("/ui/kb/docs/ingest")
    done = wait_for(lambda: c.get("/ui/kb/docs/ingest").json(),
                    lambda p: p["state"] not in ("reading", "embedding"))
    assert done["state"] == "done" and "2 added" in done["message"], done
    chunks = c.get("/ui/kb/docs").json()["chunks"]
    assert [(ch["cite"], ch.get("pages")) for ch in chunks] == [
        ("adam.pdf pp. 1-2", [1, 2]), ("sgd.docx", None)]
    assert chunks[1]["text"] == ("SGD\n\nPlain SGD takes a step against the gradient.\n\n"
                                 "optimizer | state\nSGD | none")
    final = c.post("/api/chat", json={
        "model": "kb/docs", "stream": False,
        "messages": [{"role": "user", "content": web_fixtures.QUESTION}]}).json()
    first = final["sources"][0]
    assert (first["source"], first["cite"], first["pages"]) == (
        "documents/adam.pdf", "adam.pdf pp. 1-2", [1, 2]), final["sources"]
    assert "0.999" in first["text"]


def test_deleting_a_document_takes_its_chunks_out_and_keeps_the_rest(client, settings):
  client.post("/ui/kb", json={"name": "docs"})
  upload(client, "docs", "adam.md", web_fixtures.DOCUMENT.encode())
  upload(client, "docs", "sgd notes.txt", b"Plain SGD takes a step against the gradient.")
  client.post("/ui/kb/docs/ingest")
  wait_for(lambda: client.get("/ui/kb/docs/ingest").json(), lambda p: p["state"] == "done")
  before = client.get("/ui/kb/docs").json()
  chunks = {d["name"]: d["chunks"] for d in before["documents"]}
  assert chunks["adam.md"] > 0 and chunks["sgd notes.txt"] > 0

  r = client.delete("/ui/kb/docs/documents/sgd%20notes.txt")
  assert r.status_code == 200, r.text
  done = wait_for(lambda: client.get("/ui/kb/docs/ingest").json(),
                  lambda p: p["state"] not in ("reading", "embedding"))
  assert done["state"] == "done", done
  assert "1 unchanged, 1 removed" in done["message"]
  assert done["total"] == 0  # the kept document is not embedded again
  after = client.get("/ui/kb/docs").json()
  assert [d["name"] for d in after["documents"]] == ["adam.md"]
  assert after["total_chunks"] == chunks["adam.md"]
  assert {c["source"] for c in after["chunks"]} == {"adam.md"}
  docs = settings.kb_root / "docs" / kb.DOCUMENTS
  assert sorted(p.name for p in docs.iterdir()) == ["adam.md"]
  # answers come from what is left at once
  final = json.loads(client.post("/api/chat", json={
      "model": "kb/docs", "stream": False,
      "messages": [{"role": "user", "content": web_fixtures.QUESTION}]}).text)
  assert {Path(s["source"]).name for s in final["sources"]} == {"adam.md"}

  assert client.delete("/ui/kb/docs/documents/sgd%20notes.txt").status_code == 404
  assert client.delete("/ui/kb/nowhere/documents/adam.md").status_code == 404
  for bad in (".hidden.txt", "x.txt.", "..", "%2E%2E%2Fdocs"):
    r = client.delete(f"/ui/kb/docs/documents/{bad}")
    assert r.status_code in (400, 404, 405), (bad, r.text)
  assert sorted(p.name for p in docs.iterdir()) == ["adam.md"]
  assert (settings.kb_root / "docs").is_dir()


def test_ingest_progress_while_it_embeds_and_one_ingest_at_a_time(settings):
  release = threading.Event()
  Gated = gated_embedder(release)

  with TestClient(web_fixtures.make_app(settings, Gated())) as c:
    c.post("/ui/kb", json={"name": "docs"})
    for i in range(3):
      upload(c, "docs", f"doc{i}.txt", f"Document {i} says {i}.".encode())
    c.post("/ui/kb/docs/ingest")
    midway = wait_for(lambda: c.get("/ui/kb/docs/ingest").json(),
                      lambda p: p["state"] == "embedding")
    assert (midway["done"], midway["total"]) == (0, 3)
    again = c.post("/ui/kb/docs/ingest")
    assert again.status_code == 409 and "already" in again.json()["detail"]
    assert c.delete("/ui/kb/docs/documents/doc0.txt").status_code == 409
    assert (settings.kb_root / "docs" / kb.DOCUMENTS / "doc0.txt").is_file()
    release.set()
    done = wait_for(lambda: c.get("/ui/kb/docs/ingest").json(), lambda p: p["state"] == "done")
    assert (done["done"], done["total"]) == (3, 3)


def test_ingest_of_a_missing_knowledge_base_is_404(client):
  assert client.post("/ui/kb/nowhere/ingest").status_code == 404
  assert client.get("/ui/kb/nowhere").status_code == 404


def cli_built_kb(tmp_path) -> Path:
  """A knowledge base as `python -m experiments.rag ingest --max_tokens=256` builds it from
  a folder outside its documents/."""
  from research.rag import store  # pylint: disable=g-import-not-at-top
  docs = tmp_path / "docs"
  docs.mkdir()
  (docs / "adam.txt").write_text("Adam uses betas 0.9 and 0.999 for its moment estimates.")
  (docs / "rope.txt").write_text("Rotary position embeddings rotate query and key pairs.")
  store.KnowledgeBase.open(tmp_path / "cli").ingest(docs, WordEmbedder(), max_tokens=256,
                                                    log=print)
  return tmp_path / "cli"


def test_the_kb_folder_is_read_only_from_the_ui(model_dir, data_dir, tmp_path):
  folder = cli_built_kb(tmp_path)
  before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work", kb=str(folder))
  with TestClient(web_fixtures.make_app(settings)) as c:
    described = c.get("/ui/kb/cli").json()
    assert described["writable"] is False and described["total_chunks"] == 2
    assert c.post("/ui/kb", json={"name": "cli"}).status_code == 200  # it exists: nothing made
    for r in (upload(c, "cli", "new.txt", b"Some text."), c.post("/ui/kb/cli/ingest"),
              c.delete("/ui/kb/cli/documents/adam.txt")):
      assert r.status_code == 403 and r.json()["detail"] == (
          "knowledge base 'cli' is the server's --kb folder, read-only from the web UI; start "
          "the server with --kb_writable to change it here."), r.text
  assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


def test_a_ui_ingest_of_a_writable_cli_store_keeps_its_chunks(model_dir, data_dir, tmp_path):
  folder = cli_built_kb(tmp_path)
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work", kb=str(folder),
                                       kb_writable=True)
  with TestClient(web_fixtures.make_app(settings)) as c:
    before = c.get("/ui/kb/cli").json()
    assert before["writable"] is True and before["total_chunks"] == 2
    assert c.post("/ui/kb/cli/ingest").status_code == 200
    done = wait_for(lambda: c.get("/ui/kb/cli/ingest").json(),
                    lambda p: p["state"] not in ("reading", "embedding"))
    assert done["state"] == "done" and done["message"].startswith(
        "0 added, 0 updated, 0 unchanged, 0 removed, 0 skipped; 2 chunks"), done
    assert c.get("/ui/kb/cli").json()["chunks"] == before["chunks"]


def test_an_existing_document_is_replaced_only_when_asked(client, settings):
  client.post("/ui/kb", json={"name": "docs"})
  assert upload(client, "docs", "a.txt", b"first").status_code == 200
  again = upload(client, "docs", "a.txt", b"second")
  assert again.status_code == 409 and again.json()["detail"] == (
      "a.txt is already a document of this knowledge base; upload it with replace=true to "
      "replace it.")
  document = settings.kb_root / "docs" / kb.DOCUMENTS / "a.txt"
  assert document.read_bytes() == b"first"
  r = client.post("/ui/kb/docs/documents?replace=true",
                  files={"file": ("a.txt", b"second", "text/plain")})
  assert r.status_code == 200 and document.read_bytes() == b"second"
  r = client.post("/ui/kb/docs/documents", data={"replace": "true"},
                  files={"file": ("a.txt", b"third", "text/plain")})
  assert r.status_code == 200 and document.read_bytes() == b"third"


def test_the_number_of_knowledge_bases_is_bounded(model_dir, data_dir, tmp_path):
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work", max_kbs=2)
  with TestClient(web_fixtures.make_app(settings)) as c:
    assert c.post("/ui/kb", json={"name": "a"}).status_code == 200
    assert c.post("/ui/kb", json={"name": "b"}).status_code == 200
    over = c.post("/ui/kb", json={"name": "c"})
    assert over.status_code == 409 and over.json()["detail"] == (
        "this server already has 2 knowledge bases, its limit; add documents to one of them "
        "instead.")
    assert c.post("/ui/kb", json={"name": "a"}).status_code == 200  # not a new one
    assert c.get("/ui/info").json()["kbs"] == ["a", "b"]


def test_one_ingest_at_a_time_across_knowledge_bases(settings):
  release = threading.Event()
  Gated = gated_embedder(release)

  with TestClient(web_fixtures.make_app(settings, Gated())) as c:
    for name in ("a", "b"):
      c.post("/ui/kb", json={"name": name})
      upload(c, name, "x.txt", b"Some words.")
    assert c.post("/ui/kb/a/ingest").status_code == 200
    other = c.post("/ui/kb/b/ingest")
    assert other.status_code == 409 and other.json()["detail"] == (
        "knowledge base 'a' is ingesting; one ingest runs at a time, so retry when it is done.")
    release.set()
    wait_for(lambda: c.get("/ui/kb/a/ingest").json(), lambda p: p["state"] == "done")
    assert c.post("/ui/kb/b/ingest").status_code == 200


def test_kb_responses_name_no_server_paths(client, settings):
  client.post("/ui/kb", json={"name": "docs"})
  upload(client, "docs", "adam.md", web_fixtures.DOCUMENT.encode())
  upload(client, "docs", "empty.txt", b"   ")
  client.post("/ui/kb/docs/ingest")
  done = wait_for(lambda: client.get("/ui/kb/docs/ingest").json(),
                  lambda p: p["state"] not in ("reading", "embedding"))
  assert "skipped documents/empty.txt" in done["message"], done
  final = client.post("/api/chat", json={
      "model": "kb/docs", "stream": False,
      "messages": [{"role": "user", "content": web_fixtures.QUESTION}]}).json()
  assert final["sources"][0]["source"] == "documents/adam.md"
  shown = json.dumps([done, client.get("/ui/kb/docs").json(), final])
  assert str(Path(settings.work_dir).resolve()) not in shown
  assert str(Path(settings.work_dir)) not in shown


# -- fine-tune jobs -------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("lora_rank", 0), ("lora_rank", 2.5), ("learning_rate", "fast"), ("learning_rate", 0),
    ("num_train_epochs", -1), ("cutoff_len", "nan"), ("lr_scheduler_type", "cosine_restarts"),
    ("compute_type", "int8"), ("dataset", "tiny_prefs"), ("dataset", "../../etc"),
    ("per_device_train_batch_size", True), ("output_dir", "/tmp/elsewhere"),
    ("gradient_accumulation_steps", None), ("max_steps", -3)])
def test_a_bad_form_value_is_400_naming_the_field(client, settings, field, value):
  r = client.post("/ui/jobs", json={**web_fixtures.TINY_JOB, field: value})
  assert r.status_code == 400, r.text
  assert f"field {field}" in r.json()["detail"]
  assert not (Path(settings.work_dir) / "jobs").exists()


@pytest.mark.parametrize("field, value", [
    ("dataset", "tiny"), ("pref_beta", 0), ("pref_beta", -0.1), ("pref_beta", "strong"),
    ("finetuning_type", "full"), ("stage", "ppo")])
def test_a_bad_dpo_form_value_is_400_naming_the_field(client, settings, field, value):
  r = client.post("/ui/jobs", json={**web_fixtures.TINY_DPO_JOB, field: value})
  assert r.status_code == 400, r.text
  assert f"field {field}" in r.json()["detail"]
  assert not (Path(settings.work_dir) / "jobs").exists()


def test_form_parsing_fills_defaults_and_types(data_dir):
  fields = jobs_lib.parse_form({"dataset": "tiny", "lora_rank": "16", "learning_rate": "2e-4"},
                               data_dir)
  assert fields["lora_rank"] == 16 and isinstance(fields["lora_rank"], int)
  assert fields["learning_rate"] == 2e-4
  assert fields["lr_scheduler_type"] == jobs_lib.FORM_DEFAULTS["lr_scheduler_type"]


def test_last_line_reads_progress_bars_and_tracebacks(tmp_path):
  log = tmp_path / "stderr.log"
  log.write_text("start\nsft:  10%|#  | 1/10 [00:01<00:09]\rsft:  20%|## | 2/10 [00:02]\r")
  assert jobs_lib.last_line(log).startswith("sft:  20%")
  log.write_text("Traceback (most recent call last):\n  ...\nValueError: bad data\n\n")
  assert jobs_lib.last_line(log) == "ValueError: bad data"
  assert jobs_lib.last_line(tmp_path / "missing.log") == ""


def test_a_job_trains_reports_its_loss_and_exports(client):
  started = client.post("/ui/jobs", json=web_fixtures.TINY_JOB)
  assert started.status_code == 200, started.text
  job = started.json()["id"]
  assert client.post("/ui/jobs", json=web_fixtures.TINY_JOB).status_code == 409  # one at a time
  status = wait_for(lambda: client.get(f"/ui/jobs/{job}").json(),
                    lambda s: s["state"] != "running")
  assert status["state"] == "finished", status
  assert [p["step"] for p in status["points"]] == [1, 2, 3] and status["total_steps"] == 3
  assert all(np.isfinite(p["loss"]) for p in status["points"])
  assert client.get("/ui/jobs").json()["jobs"][0]["id"] == job
  exported = client.post(f"/ui/jobs/{job}/export")
  assert exported.status_code == 200, exported.text
  status = wait_for(lambda: client.get(f"/ui/jobs/{job}").json(),
                    lambda s: s["export"]["state"] != "running")
  assert status["export"]["state"] == "finished", status
  work_dir = Path(client.app.state.services.settings.work_dir)
  assert status["export"]["path"] == f"jobs/{job}/export"  # where the server lives is not shown
  path = work_dir / status["export"]["path"]
  assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
  assert (path / "adapter" / "adapter_config.json").is_file()
  # a server started later lists the job from its folder, finished and exported
  again = jobs_lib.Jobs(work_dir / "jobs", "m", ".")
  later = again.status(job)
  assert later["state"] == "finished" and later["export"] == status["export"]
  assert len(later["points"]) == 3


@pytest.fixture(scope="module")
def learning_model_dir(tmp_path_factory):
  """The citing model with its final norm kept: its logits, hence DPO's loss, can move."""
  return web_fixtures.write_citing_model(tmp_path_factory.mktemp("learning") / "model",
                                         zero_logits=False)


def test_a_dpo_job_trains_on_preference_pairs_and_exports(learning_model_dir, data_dir,
                                                          tmp_path):
  settings = web_fixtures.settings_for(learning_model_dir, data_dir, tmp_path / "work")
  with TestClient(web_fixtures.make_app(settings)) as client:
    started = client.post("/ui/jobs", json=web_fixtures.TINY_DPO_JOB)
    assert started.status_code == 200, started.text
    job = started.json()["id"]
    status = wait_for(lambda: client.get(f"/ui/jobs/{job}").json(),
                      lambda s: s["state"] != "running")
    assert status["state"] == "finished", status
    assert status["fields"]["stage"] == "dpo" and status["fields"]["pref_beta"] == 0.2
    job_dir = settings.work_dir / status["dir"]
    config = json.loads((job_dir / "config.json").read_text())
    assert (config["stage"], config["dataset"], config["pref_beta"]) == ("dpo", "tiny_prefs",
                                                                         0.2)
    summary = json.loads((job_dir / "train" / "summary.json").read_text())
    assert summary["stage"] == "dpo" and summary["steps"] == 3
    # DPO's loss starts at ln 2 (the policy equals its reference before the first step), then
    # falls as the chosen answers' reward overtakes the rejected ones'
    assert [p["step"] for p in status["points"]] == [1, 2, 3]
    losses = [p["loss"] for p in status["points"]]
    assert abs(losses[0] - np.log(2)) < 1e-3
    assert losses[-1] < np.log(2) - 0.01, losses
    rows = [json.loads(line) for line in
            (job_dir / "train" / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "rewards/accuracies" in r]
    # at step 1 the rewards are zero up to float32 rounding (policy and reference are two
    # programs), so the first accuracy is a coin toss on 1e-7 noise and is not asserted
    assert abs(rows[0]["rewards/chosen"]) < 1e-5 and abs(rows[0]["rewards/rejected"]) < 1e-5
    assert rows[-1]["rewards/accuracies"] > 0.5, rows
    assert rows[-1]["rewards/margins"] > 0
    assert client.get("/ui/jobs").json()["jobs"][0]["stage"] == "dpo"
    assert client.post(f"/ui/jobs/{job}/export").status_code == 200
    status = wait_for(lambda: client.get(f"/ui/jobs/{job}").json(),
                      lambda s: s["export"]["state"] != "running")
    assert status["export"]["state"] == "finished", status
    path = settings.work_dir / status["export"]["path"]
    assert (path / "model.safetensors").is_file()
    assert (path / "adapter" / "adapter_config.json").is_file()


def test_a_failing_job_shows_the_last_line_of_its_errors(model_dir, tmp_path):
  data_dir = web_fixtures.write_tiny_data(tmp_path / "data")
  info = json.loads((data_dir / "dataset_info.json").read_text())
  info["gone"] = {"file_name": "gone.json"}  # listed, but its file was never written
  (data_dir / "dataset_info.json").write_text(json.dumps(info))
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work")
  with TestClient(web_fixtures.make_app(settings)) as c:
    job = c.post("/ui/jobs", json={**web_fixtures.TINY_JOB, "dataset": "gone"}).json()["id"]
    status = wait_for(lambda: c.get(f"/ui/jobs/{job}").json(),
                      lambda s: s["state"] != "running")
  assert status["state"] == "failed"
  assert "gone.json" in status["message"], status["message"]
  assert status["points"] == [] and status["export"] is None


def test_a_stopped_job_says_so_and_has_nothing_to_export(client):
  job = client.post("/ui/jobs", json={**web_fixtures.TINY_JOB, "max_steps": 10**5}).json()["id"]
  status = client.post(f"/ui/jobs/{job}/stop").json()
  assert status["state"] == "stopped"
  r = client.post(f"/ui/jobs/{job}/export")
  assert r.status_code == 409 and "checkpoint" in r.json()["detail"]
  assert client.get("/ui/jobs/nope").status_code == 404


def test_shutting_the_server_down_ends_its_training(settings):
  with TestClient(web_fixtures.make_app(settings)) as c:
    status = c.post("/ui/jobs", json={**web_fixtures.TINY_JOB, "max_steps": 10**5}).json()
    assert status["state"] == "running"
  with pytest.raises(ProcessLookupError):
    os.kill(status["pid"], 0)


# -- evaluate & predict ---------------------------------------------------------------------

def finished_job(work_dir, model_dir, data_dir, job_id="20260101-000000-aaaaaa") -> Path:
  """A job folder as a finished, exported SFT job leaves it, its export the citing model
  itself: the next server lists it, and predict needs no training first."""
  job_dir = Path(work_dir) / "jobs" / job_id
  fields = jobs_lib.parse_form(web_fixtures.TINY_JOB, data_dir)
  config = jobs_lib.make_config(fields, model_dir, data_dir, job_dir)
  (job_dir / "train").mkdir(parents=True)
  (job_dir / "config.json").write_text(json.dumps(config.to_dict()))
  (job_dir / "job.json").write_text(json.dumps({"id": job_id, "fields": fields,
                                                "created": 1.0}))
  (job_dir / "train" / "summary.json").write_text("{}")
  shutil.copytree(model_dir, job_dir / "export")
  return job_dir


PREDICT = {"eval_dataset": "tiny", "max_samples": 3, "max_new_tokens": 4}


def test_predict_fields_are_checked_and_one_runs_at_a_time(model_dir, data_dir, settings):
  job = finished_job(settings.work_dir, model_dir, data_dir).name
  with TestClient(web_fixtures.make_app(settings)) as c:
    assert c.get(f"/ui/jobs/{job}").json()["predict"] is None
    assert c.get("/ui/info").json()["eval_datasets"] == ["tiny", "tiny_prefs"]
    for field, value, says in [("eval_dataset", "gone", "expected one of the datasets"),
                               ("max_new_tokens", 0, "expected at least 1"),
                               ("max_new_tokens", 10**5, "expected at least 1 and at most 4096"),
                               ("max_samples", -1, "expected at least 0"),
                               ("top_k", 5, "not a predict knob")]:
      r = c.post(f"/ui/jobs/{job}/predict", json={**PREDICT, field: value})
      assert r.status_code == 400 and f"field {field}: {says}" in r.json()["detail"], r.text
    assert c.post("/ui/jobs/nope/predict", json=PREDICT).status_code == 404
    started = c.post(f"/ui/jobs/{job}/predict", json=PREDICT)
    assert started.status_code == 200, started.text
    assert started.json()["predict"]["state"] == "running"
    assert started.json()["predict"]["source"] == "export"
    assert c.post(f"/ui/jobs/{job}/predict", json=PREDICT).status_code == 409
  # the server's shutdown ended it; the next server calls it interrupted
  with TestClient(web_fixtures.make_app(settings)) as c:
    assert c.get(f"/ui/jobs/{job}").json()["predict"]["state"] == "interrupted"


def test_a_finished_predict_shows_its_scores_and_the_first_rows(model_dir, data_dir, settings):
  job_dir = finished_job(settings.work_dir, model_dir, data_dir)
  folder = job_dir / "predict"
  folder.mkdir()
  (folder / "request.json").write_text(json.dumps({**PREDICT, "source": "export"}))
  rows = [{"prompt": f"w3 w{i} w1 w4 ", "predict": "w40", "label": "w41"} for i in range(12)]
  (folder / "generated_predictions.jsonl").write_text(
      "".join(json.dumps(r) + "\n" for r in rows))
  metrics = {"predict_bleu-4": 1.5, "predict_rouge-1": 2.5, "predict_rouge-2": 0.0,
             "predict_rouge-l": 2.5, "predict_runtime": 1.0}
  (folder / "predict_results.json").write_text(json.dumps(metrics))
  with TestClient(web_fixtures.make_app(settings)) as c:
    p = c.get(f"/ui/jobs/{job_dir.name}").json()["predict"]
  assert p["state"] == "finished" and p["metrics"] == metrics
  assert p["sample"] == rows[:jobs_lib.PREDICT_SAMPLE]
  assert (p["eval_dataset"], p["source"], p["path"]) == (
      "tiny", "export", str(folder.relative_to(settings.work_dir)))


def test_predict_needs_a_tuned_model(model_dir, data_dir, settings):
  job_dir = finished_job(settings.work_dir, model_dir, data_dir)
  shutil.rmtree(job_dir / "export")  # and it saved no checkpoint
  with TestClient(web_fixtures.make_app(settings)) as c:
    r = c.post(f"/ui/jobs/{job_dir.name}/predict", json=PREDICT)
  assert r.status_code == 409 and "neither an export nor a checkpoint" in r.json()["detail"]


def test_a_finished_job_cannot_resume_and_can_be_deleted(model_dir, data_dir, settings):
  job_dir = finished_job(settings.work_dir, model_dir, data_dir)
  job = job_dir.name
  with TestClient(web_fixtures.make_app(settings)) as c:
    r = c.post(f"/ui/jobs/{job}/resume")
    assert r.status_code == 409 and "is finished; only an interrupted" in r.json()["detail"]
    assert c.post("/ui/jobs/nope/resume").status_code == 404
    assert c.delete(f"/ui/jobs/{job}").json() == {"id": job, "state": "deleted"}
    assert not job_dir.exists() and c.get("/ui/jobs").json()["jobs"] == []
    assert c.delete(f"/ui/jobs/{job}").status_code == 404
