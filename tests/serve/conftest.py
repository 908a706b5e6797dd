"""One server for the whole session: a tiny random llama (an HF directory that
research.load_model reads, so experiments/chat.py can load the same one), a stand-in word
embedder, a small knowledge base, and an API key; uvicorn on a free loopback port in a
background thread."""

import hashlib
import json
import os
import re
import socket
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

KEY = "test-key"
VOCAB = 64
# Words t0..t63; t1 ends a turn, t3 opens a user turn, t4 an assistant turn, t5 a system one.
TEMPLATE = ("{% for m in messages %}{{ 't3' if m['role'] == 'user' else ('t5' if m['role'] == "
            "'system' else 't4') }} {{ m['content'] }} t1 {% endfor %}"
            "{% if add_generation_prompt %}t4 {% endif %}")
KB_DOCS = {"adam.txt": "Adam uses betas 0.9 and 0.999 for its moment estimates.",
           "rope.txt": "Rotary position embeddings rotate query and key pairs by angle."}


class WordEmbedder:
  """Hashed bag of words, unit rows: retrieval that works without MiniLM."""
  dim = 16

  def count_tokens(self, texts):
    return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

  def encode(self, texts, progress=False):
    del progress
    out = np.zeros((len(texts), self.dim), np.float32)
    for i, text in enumerate(texts):
      for word in re.findall(r"\w+", text.lower()):
        out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1
      out[i] /= max(np.linalg.norm(out[i]), 1e-12)
    return out


def write_tiny_llama(path):
  import tokenizers  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48,
                                    num_hidden_layers=2, num_attention_heads=4,
                                    num_key_value_heads=2, max_position_embeddings=512,
                                    rms_norm_eps=1e-6, rope_theta=1000.0,
                                    initializer_range=0.3)  # logits that can move
  transformers.LlamaForCausalLM(config).save_pretrained(path)
  vocab = {f"t{i}": i for i in range(VOCAB)}
  tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="t0"))
  tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
  tok.decoder = tokenizers.decoders.WordPiece(prefix="##")  # joins words with spaces
  tok.save(str(path / "tokenizer.json"))
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"eos_token": "t1", "pad_token": "t0", "chat_template": TEMPLATE}))
  return path


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Server:

  def __init__(self, app, port):
    import uvicorn  # pylint: disable=g-import-not-at-top
    self.port = port
    self.url = f"http://127.0.0.1:{port}"
    self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                log_level="warning"))
    self.thread = threading.Thread(target=self.server.run, daemon=True)

  def __enter__(self):
    self.thread.start()
    deadline = time.time() + 30
    while not self.server.started:
      if time.time() > deadline or not self.thread.is_alive():
        raise RuntimeError("the test server did not start")
      time.sleep(0.02)
    return self

  def __exit__(self, *exc):
    self.server.should_exit = True
    self.thread.join(10)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
  return write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def server(tiny_llama_dir, tmp_path_factory):
  import research  # pylint: disable=g-import-not-at-top
  from research.rag import store  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
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
  with Server(app_lib.create_app(settings, services), free_port()) as running:
    running.services = running.server.config.app.state.services
    yield running
