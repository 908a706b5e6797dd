"""One server for the whole session: a tiny random llama (an HF directory that
research.load_model reads, so experiments/chat.py can load the same one), a stand-in word
embedder, a small knowledge base, and an API key; uvicorn on a free loopback port in a
background thread."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from tests import tiny_llama  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests.rag.conftest import WordEmbedder  # pylint: disable=g-import-not-at-top,wrong-import-position

KEY = "test-key"
KB_DOCS = {"adam.txt": "Adam uses betas 0.9 and 0.999 for its moment estimates.",
           "rope.txt": "Rotary position embeddings rotate query and key pairs by angle."}


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
  return tiny_llama.write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), max_positions=512)


@pytest.fixture(scope="session")
def server(tiny_llama_dir, tmp_path_factory):
  import research  # pylint: disable=g-import-not-at-top
  from research.rag import store  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve import launch  # pylint: disable=g-import-not-at-top
  from research.serve import services as services_lib  # pylint: disable=g-import-not-at-top
  from research.serve.settings import Settings  # pylint: disable=g-import-not-at-top
  work = tmp_path_factory.mktemp("serve")
  docs = work / "docs"
  docs.mkdir()
  for name, text in KB_DOCS.items():
    (docs / name).write_text(text)
  embedder = WordEmbedder()
  store.KnowledgeBase.open(work / "notes").ingest(docs, embedder, log=lambda m: None)
  settings = Settings(model=str(tiny_llama_dir), kb=str(work / "notes"), api_key=KEY,
                      work_dir=work, max_new_tokens=32, max_prompt_tokens=256, queue_size=8,
                      max_body_bytes=64 << 10)
  services = services_lib.Services(settings, lm=research.load_model(str(tiny_llama_dir)),
                                   embedder=embedder)
  with launch.ServerThread(app_lib.create_app(settings, services)) as running:
    running.services = running.server.config.app.state.services
    yield running
