"""Ollama's API through the official `ollama` client."""

import json
import time

import httpx
import numpy as np
import ollama
import pytest

from tests.serve.conftest import KEY
from tests.serve.conftest import WordEmbedder

GREEDY = {"temperature": 0, "num_predict": 12}
ASK = [{"role": "user", "content": "t10 t11 t12"}]


@pytest.fixture(scope="module")
def client(server):
  return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def model(server):
  return server.services.model_name


def test_chat_streamed_equals_chat_whole(client, model, server):
  whole = client.chat(model=model, messages=ASK, options=GREEDY)
  parts = list(client.chat(model=model, messages=ASK, options=GREEDY, stream=True))
  assert whole.message.role == "assistant" and whole.message.content
  assert "".join(p.message.content for p in parts) == whole.message.content
  assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
  final = parts[-1]
  assert final.done_reason in ("stop", "length")
  assert final.eval_count == whole.eval_count and 1 <= final.eval_count <= 12
  tok = server.services.lm().tokenizer
  assert final.prompt_eval_count == len(tok.encode(tok.apply_chat_template(ASK)))
  assert final.eval_duration > 0 and final.total_duration >= final.eval_duration


def test_num_predict_caps_the_answer(client, model):
  done = client.chat(model=model, messages=ASK, options={"temperature": 0, "num_predict": 3})
  assert done.eval_count <= 3
  if done.eval_count == 3:
    assert done.done_reason == "length"


def test_same_seed_same_sample(client, model):
  options = {"temperature": 1.0, "top_k": 20, "top_p": 0.95, "min_p": 0.05, "seed": 7,
             "num_predict": 10}
  a = client.chat(model=model, messages=ASK, options=options).message.content
  b = client.chat(model=model, messages=ASK, options=options).message.content
  assert a == b


def test_stop_string_cuts_the_answer(client, model):
  full = client.generate(model=model, prompt="t10 t11", options=GREEDY).response
  words = full.split()
  assert len(words) >= 3, full
  stop = words[2]
  cut = client.generate(model=model, prompt="t10 t11", options=dict(GREEDY, stop=[stop]))
  assert cut.response == full[:full.index(stop)]
  assert cut.done_reason == "stop"


def test_generate_streamed(client, model):
  parts = list(client.generate(model=model, prompt="t10 t11", options=GREEDY, stream=True))
  whole = client.generate(model=model, prompt="t10 t11", options=GREEDY)
  assert "".join(p.response for p in parts) == whole.response
  assert parts[-1].done and parts[-1].eval_count == whole.eval_count


def test_embed_is_the_embedder_normalised(client, server):
  texts = ["adam betas", "rotary position embeddings"]
  got = np.array(client.embed(model="all-minilm-l6-v2", input=texts).embeddings)
  np.testing.assert_allclose(got, WordEmbedder().encode(texts), atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
  one = client.embed(model="all-minilm-l6-v2", input="adam betas").embeddings
  np.testing.assert_allclose(one[0], got[0], atol=1e-6)
  legacy = client.embeddings(model="all-minilm-l6-v2", prompt="adam betas").embedding
  np.testing.assert_allclose(legacy, got[0], atol=1e-6)
  del server


def test_list_names_the_model_and_the_knowledge_bases(client, model):
  names = [m.model for m in client.list().models]
  assert names[0] == model
  assert "kb/notes" in names


def test_version(server):
  r = httpx.get(f"{server.url}/api/version", headers={"Authorization": f"Bearer {KEY}"})
  assert r.status_code == 200 and r.json()["version"]


def _raw_chat(server, body):
  """The JSON lines as sent: the ollama client's types drop fields they do not know, such as
  "sources", so these tests read the wire."""
  r = httpx.post(f"{server.url}/api/chat", json=body, timeout=60,
                 headers={"Authorization": f"Bearer {KEY}"})
  assert r.status_code == 200, r.text
  return [json.loads(line) for line in r.text.splitlines()]


def test_knowledge_base_answer_carries_sources(client, server):
  question = [{"role": "user", "content": "rotary position embeddings"}]
  body = {"model": "kb/notes", "messages": question, "options": GREEDY}
  [done] = _raw_chat(server, dict(body, stream=False))
  sources = done["sources"]
  assert sources and sources[0]["n"] == 1
  assert sources[0]["source"].endswith("rope.txt") and sources[0]["chunk"] == 0
  assert "Rotary" in sources[0]["text"] and sources[0]["score"] > 0.2
  assert set(sources[0]) == {"n", "source", "chunk", "text", "score", "cite"}
  streamed = _raw_chat(server, body)
  assert streamed[-1]["done"] and streamed[-1]["sources"] == sources
  assert all("sources" not in part for part in streamed[:-1])
  text = "".join(part["message"]["content"] for part in streamed)
  assert text == done["message"]["content"]
  # the same answer through the client, by the model name or by the kb field
  assert client.chat(model="kb/notes", messages=question, options=GREEDY).message.content == text
  [by_field] = _raw_chat(server, dict(body, model=server.services.model_name, kb="notes",
                                      stream=False))
  assert by_field["message"]["content"] == text and by_field["sources"] == sources


def test_knowledge_base_answers_are_greedy_unless_a_temperature_is_set(server):
  question = [{"role": "user", "content": "rotary position embeddings"}]
  ask = lambda options: _raw_chat(server, {"model": "kb/notes", "messages": question,
                                           "stream": False, "options": options})[0]
  greedy = ask({"temperature": 0, "num_predict": 12})
  assert ask({"num_predict": 12})["message"]["content"] == greedy["message"]["content"]
  hot = {"temperature": 1.5, "top_k": 0, "top_p": 1.0, "seed": 7, "num_predict": 12}
  sampled, again = ask(hot), ask(hot)
  assert sampled["message"]["content"] == again["message"]["content"]  # seeded
  assert sampled["message"]["content"] != greedy["message"]["content"]
  assert sampled["sources"] == greedy["sources"]  # the same passages, sampled wording
  other = ask(dict(hot, seed=8))["message"]["content"]
  assert other != sampled["message"]["content"]


def test_knowledge_base_refuses_what_it_lacks(server):
  from research.rag import answer  # pylint: disable=g-import-not-at-top
  # The stand-in embedder hashes words into 16 buckets, so unrelated words can share one
  # ("zebra" lands in one of Adam's: cosine 0.34, match 0.24 now that cosine weighs 0.7); the
  # question is one with a chance cosine of 0.10, as low as MiniLM's off-topic ones are
  # (BENCHMARKS.md, RAG: the best off-topic match is 0.136)
  question = "capital of australia"
  [done] = _raw_chat(server, {"model": "kb/notes", "stream": False,
                              "messages": [{"role": "user", "content": question}]})
  assert done["message"]["content"] == answer.NO_ANSWER and done["sources"] == []


def test_wrong_key_refused_right_key_accepted(server, model):
  for headers in ({}, {"Authorization": "Bearer nope"}):
    with pytest.raises(ollama.ResponseError) as e:
      ollama.Client(host=server.url, headers=headers).chat(model=model, messages=ASK)
    assert e.value.status_code == 401 and "API key" in e.value.error
  good = ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})
  assert good.list().models


def test_unknown_model_is_404_with_the_names(client):
  with pytest.raises(ollama.ResponseError) as e:
    client.chat(model="llama3", messages=ASK)
  assert e.value.status_code == 404 and "llama3" in e.value.error and "kb/notes" in e.value.error


def test_unknown_option_is_400_naming_it(client, model):
  with pytest.raises(ollama.ResponseError) as e:
    client.chat(model=model, messages=ASK, options={"temprature": 0.5})
  assert e.value.status_code == 400
  assert e.value.error == "Unknown field 'options.temprature': this API does not take it."


def test_show_and_ps_answer_what_ollama_run_asks(client, model, server):
  shown = client.show(model)
  assert shown.capabilities == ["completion"]
  assert shown.modelinfo["llama.context_length"] == server.services.lm().config.max_length
  assert client.show("all-minilm-l6-v2").capabilities == ["embedding"]
  assert client.show("kb/notes").capabilities == ["completion"]
  assert [m.model for m in client.ps().models] == [model]
  with pytest.raises(ollama.ResponseError) as e:
    client.show("llama3")
  assert e.value.status_code == 404


# -- bounds: each request just over one gets a sentence, one at it is answered --------------

def _post(server, path, body):
  return httpx.post(f"{server.url}{path}", json=body, timeout=60,
                    headers={"Authorization": f"Bearer {KEY}"})


def test_a_long_knowledge_base_question_is_refused_before_the_worker(server):
  completed = server.services.worker.completed
  limit = server.services.settings.max_prompt_tokens
  for question, says in [("rotary " * limit, f"tokens; with the instructions"),
                         ("r" * 60_000, "characters, more than a prompt of at most")]:
    start = time.monotonic()
    r = _post(server, "/api/chat", {"model": "kb/notes", "stream": False,
                                    "messages": [{"role": "user", "content": question}]})
    assert r.status_code == 400, r.text[:200]
    assert r.json()["error"].startswith("messages: the knowledge-base question: ") and says in (
        r.json()["error"]), r.json()
    assert time.monotonic() - start < 10
  assert server.services.worker.completed == completed  # nothing reached the worker


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_stop_strings_are_bounded_in_count_and_length(server, model, path):
  settings = server.services.settings
  body = {"model": model, "stream": False}
  body.update({"messages": ASK} if path == "/api/chat" else {"prompt": "t10 t11"})
  stop = lambda stops: _post(server, path, dict(body, options=dict(GREEDY, stop=stops)))
  assert stop([f"x{i}" for i in range(settings.max_stop)]).status_code == 200
  over = stop([f"x{i}" for i in range(settings.max_stop + 1)])
  assert over.status_code == 400 and over.json()["error"] == (
      f"options.stop: {settings.max_stop + 1} stop strings, more than this server's limit of "
      f"{settings.max_stop}.")
  assert stop(["y" * settings.max_stop_chars]).status_code == 200
  over = stop(["y" * (settings.max_stop_chars + 1)])
  assert over.status_code == 400 and "stop string of" in over.json()["error"]


def test_a_top_k_beyond_the_vocabulary_keeps_every_token(server, model):
  hot = {"temperature": 1.0, "top_p": 1.0, "seed": 7, "num_predict": 8}
  ask = lambda top_k: _post(server, "/api/chat", {"model": model, "messages": ASK,
                                                  "stream": False,
                                                  "options": dict(hot, top_k=top_k)})
  off = ask(0).json()["message"]["content"]
  for top_k in (2**40, 2**70, server.services.lm().config.vocab_size):
    r = ask(top_k)
    assert r.status_code == 200, r.text
    assert r.json()["message"]["content"] == off


def test_embeddings_are_bounded_and_wait_their_turn_on_the_worker(server):
  limit = server.services.settings.max_embed_inputs
  completed = server.services.worker.completed
  ok = _post(server, "/api/embed", {"model": "m", "input": ["adam"] * limit})
  assert ok.status_code == 200 and len(ok.json()["embeddings"]) == limit
  assert _post(server, "/api/embeddings", {"model": "m", "prompt": "adam"}).status_code == 200
  assert server.services.worker.completed == completed + 2  # both ran on the worker
  over = _post(server, "/api/embed", {"model": "m", "input": ["adam"] * (limit + 1)})
  assert over.status_code == 400 and over.json()["error"] == (
      f"input: {limit + 1} texts, more than this server's limit of {limit} in one request.")
