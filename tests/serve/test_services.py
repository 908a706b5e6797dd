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
  assert services.model_names() == ["some/dir/tiny", "kb/my-notes", "kb/made"]
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
