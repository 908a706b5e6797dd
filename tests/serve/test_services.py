"""Services: knowledge-base names and folders, re-opening a changed knowledge base, model
names."""

import pytest

from research.rag import store
from research.serve import services as services_lib
from research.serve.settings import Settings
from tests.serve.conftest import WordEmbedder


@pytest.fixture
def services(tmp_path):
  docs = tmp_path / "docs"
  docs.mkdir()
  (docs / "a.txt").write_text("Adam uses betas 0.9 and 0.999.")
  store.KnowledgeBase.open(tmp_path / "my.notes").ingest(docs, WordEmbedder(), log=print)
  store.KnowledgeBase.open(tmp_path / "work" / "kb" / "made").ingest(docs, WordEmbedder(),
                                                                      log=print)
  (tmp_path / "work" / "kb" / "empty").mkdir()
  settings = Settings(model="some/dir/tiny", kb=str(tmp_path / "my.notes"),
                      work_dir=tmp_path / "work")
  return services_lib.Services(settings, lm=object(), embedder=WordEmbedder())


def test_kb_names_are_the_kb_flag_and_the_built_ones(services, tmp_path):
  assert services.kb_names() == ["my-notes", "made"]
  assert services.kb_dir("my-notes") == tmp_path / "my.notes"
  assert services.kb_dir("made") == tmp_path / "work" / "kb" / "made"
  assert services.kb_dir("new_one") == tmp_path / "work" / "kb" / "new_one"


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "x" * 65, ".", "a b", None])
def test_kb_names_cannot_leave_the_kb_folder(services, name):
  with pytest.raises(ValueError, match="knowledge-base name"):
    services.kb_dir(name)


def test_a_kb_changed_on_disk_is_opened_again(services, tmp_path):
  before = services.open_kb("made")
  assert services.open_kb("made") is before
  more = tmp_path / "more"
  more.mkdir()
  (more / "b.txt").write_text("Rotary embeddings rotate pairs.")
  store.KnowledgeBase.open(tmp_path / "work" / "kb" / "made").ingest(more, WordEmbedder(),
                                                                      log=print)
  after = services.open_kb("made")
  assert after is not before and len(after) == len(before) + 1


def test_model_names_resolve(services):
  assert services.model_names() == ["some/dir/tiny", "smollm2-135m-instruct", "kb/my-notes",
                                   "kb/made"]  # --model, the packaged one, the kbs
  assert services.resolve_model("some/dir/tiny") is None
  assert services.resolve_model("tiny:latest") is None
  assert services.resolve_model("kb/made") == "made"
  assert services.resolve_model("tiny", kb="my-notes") == "my-notes"
  for bad, status in (("llama3", 404), ("kb/nothing", 404), ("kb/../x", 404)):
    with pytest.raises(services_lib.RequestError) as e:
      services.resolve_model(bad)
    assert e.value.status == status
  with pytest.raises(services_lib.RequestError) as e:
    services.resolve_model("kb/made", kb="my-notes")
  assert e.value.status == 400


def test_embedding_requests_are_bounded_in_texts_and_characters(tmp_path):
  from fastapi.testclient import TestClient  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  settings = Settings(work_dir=tmp_path, max_embed_inputs=3, max_embed_chars=20)
  app = app_lib.create_app(settings, services_lib.Services(settings, lm=object(),
                                                           embedder=WordEmbedder()))
  with TestClient(app, base_url="http://127.0.0.1") as c:  # a Host the guard answers
    for path, error, body in [("/api/embed", lambda r: r.json()["error"], {}),
                              ("/v1/embeddings", lambda r: r.json()["error"]["message"], {})]:
      post = lambda texts: c.post(path, json=dict(body, model="m", input=texts))
      assert post(["a" * 10, "b" * 10]).status_code == 200, path
      assert post(["a", "b", "c"]).status_code == 200, path
      over = post(["a" * 10, "b" * 11])
      assert over.status_code == 400 and error(over) == (
          "input: 21 characters in all, more than this server's limit of 20 in one request.")
      over = post(["a", "b", "c", "d"])
      assert over.status_code == 400 and "4 texts" in error(over)
    legacy = c.post("/api/embeddings", json={"model": "m", "prompt": "x" * 21})
    assert legacy.status_code == 400 and legacy.json()["error"].startswith("prompt: 21 ")


def test_embedding_stops_between_batches_once_cancelled(services):
  import threading  # pylint: disable=g-import-not-at-top
  cancel = threading.Event()

  class Cancelling(WordEmbedder):
    def encode(self, texts, progress=False):
      cancel.set()  # the client leaves while the first batch embeds
      return super().encode(texts, progress)

  services._embedder = embedder = Cancelling()  # pylint: disable=protected-access
  assert services.embed(["adam"] * (3 * services_lib.EMBED_BATCH), cancel) is None
  assert embedder.embedded == services_lib.EMBED_BATCH
  vectors, tokens = services.embed(["adam", "betas"])
  assert vectors.shape == (2, WordEmbedder.dim) and tokens == 2
