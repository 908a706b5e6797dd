"""OpenAI's API through the official `openai` client."""

import time

import httpx
import numpy as np
import openai
import pytest

from tests.serve.conftest import KEY
from tests.serve.conftest import WordEmbedder

ASK = [{"role": "user", "content": "t10 t11 t12"}]


@pytest.fixture(scope="module")
def client(server):
  return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def model(server):
  return server.services.model_name


def test_chat_streamed_equals_chat_whole(client, model, server):
  whole = client.chat.completions.create(model=model, messages=ASK, temperature=0,
                                         max_tokens=12)
  chunks = list(client.chat.completions.create(
      model=model, messages=ASK, temperature=0, max_tokens=12, stream=True,
      stream_options={"include_usage": True}))
  text = whole.choices[0].message.content
  assert text and whole.choices[0].message.role == "assistant"
  assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
  reasons = [c.choices[0].finish_reason for c in chunks if c.choices]
  assert reasons[-1] == whole.choices[0].finish_reason and set(reasons[:-1]) == {None}
  assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage
  tok = server.services.lm().tokenizer
  assert whole.usage.prompt_tokens == len(tok.encode(tok.apply_chat_template(ASK)))
  assert 1 <= whole.usage.completion_tokens <= 12


def test_stream_ends_with_done(server, model):
  r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                 headers={"Authorization": f"Bearer {KEY}"},
                 json={"model": model, "messages": ASK, "stream": True, "max_tokens": 3})
  assert r.headers["content-type"].startswith("text/event-stream")
  events = [line for line in r.text.split("\n\n") if line]
  assert events[-1] == "data: [DONE]" and all(e.startswith("data: {") for e in events[:-1])


def test_max_completion_tokens_and_extras(client, model):
  done = client.chat.completions.create(
      model=model, messages=ASK, temperature=0.9, top_p=0.9, seed=3, max_completion_tokens=4,
      extra_body={"top_k": 10, "min_p": 0.05})
  again = client.chat.completions.create(
      model=model, messages=ASK, temperature=0.9, top_p=0.9, seed=3, max_completion_tokens=4,
      extra_body={"top_k": 10, "min_p": 0.05})
  assert done.usage.completion_tokens <= 4
  assert done.choices[0].message.content == again.choices[0].message.content


def test_max_tokens_above_the_cap_is_lowered(client, model, server):
  done = client.chat.completions.create(model=model, messages=ASK, temperature=0,
                                        max_tokens=100_000)
  assert done.usage.completion_tokens <= server.services.settings.max_new_tokens


def test_text_parts_and_developer_role(client, model):
  parts = [{"role": "developer", "content": "t20"},
           {"role": "user", "content": [{"type": "text", "text": "t10 t11 t12"}]}]
  plain = [{"role": "system", "content": "t20"}, {"role": "user", "content": "t10 t11 t12"}]
  a = client.chat.completions.create(model=model, messages=parts, temperature=0, max_tokens=6)
  b = client.chat.completions.create(model=model, messages=plain, temperature=0, max_tokens=6)
  assert a.choices[0].message.content == b.choices[0].message.content


def test_embeddings_base64_and_float(client):
  texts = ["adam betas", "rotary position embeddings"]
  default = client.embeddings.create(model="all-minilm-l6-v2", input=texts)  # base64 wire
  floats = client.embeddings.create(model="all-minilm-l6-v2", input=texts,
                                    encoding_format="float")
  want = WordEmbedder().encode(texts)
  for got in (default, floats):
    np.testing.assert_allclose(np.array([d.embedding for d in got.data]), want, atol=1e-6)
    assert [d.index for d in got.data] == [0, 1]
  assert default.usage.prompt_tokens == 5


def test_models_lists_the_model_and_knowledge_bases(client, model):
  ids = [m.id for m in client.models.list()]
  assert ids[0] == model and "kb/notes" in ids


def test_knowledge_base_answer_carries_sources(client):
  question = [{"role": "user", "content": "rotary position embeddings"}]
  done = client.chat.completions.create(model="kb/notes", messages=question, max_tokens=8)
  sources = done.model_extra["sources"]
  assert sources[0]["source"].endswith("rope.txt") and sources[0]["n"] == 1
  assert set(sources[0]) == {"n", "source", "chunk", "text", "score", "cite"}
  chunks = list(client.chat.completions.create(model="kb/notes", messages=question,
                                               max_tokens=8, stream=True))
  last = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
  assert last.model_extra["sources"] == sources
  assert all("sources" not in c.model_extra for c in chunks if c is not last)
  text = "".join(c.choices[0].delta.content or "" for c in chunks)
  assert text == done.choices[0].message.content
  model = client.models.list().data[0].id
  by_field = client.chat.completions.create(model=model, messages=question, max_tokens=8,
                                            extra_body={"kb": "notes"})
  assert by_field.model_extra["sources"] == sources
  assert by_field.choices[0].message.content == text


def test_knowledge_base_answers_are_greedy_unless_a_temperature_is_set(client):
  question = [{"role": "user", "content": "rotary position embeddings"}]
  ask = lambda **kw: client.chat.completions.create(
      model="kb/notes", messages=question, max_tokens=12, **kw).choices[0].message.content
  greedy = ask(temperature=0)
  assert ask() == greedy  # not OpenAI's default of 1 for knowledge-base answers
  sampled = ask(temperature=1.5, seed=7)
  assert sampled == ask(temperature=1.5, seed=7) and sampled != greedy


def test_wrong_key_refused_right_key_accepted(server, model):
  bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="nope", max_retries=0)
  with pytest.raises(openai.AuthenticationError) as e:
    bad.chat.completions.create(model=model, messages=ASK)
  assert "API key" in e.value.message
  good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)
  assert good.models.list().data


def test_unsupported_requests_get_one_sentence(client, model):
  cases = [({"n": 2}, "n: "), ({"tools": [{"type": "function", "function": {"name": "f"}}]},
                               "tools: "),
           ({"extra_body": {"temprature": 1}}, "Unknown field 'temprature'"),
           ({"temperature": 3}, "Field 'temperature': input should be less than or equal to 2")]
  for kwargs, start in cases:
    with pytest.raises(openai.BadRequestError) as e:
      client.chat.completions.create(model=model, messages=ASK, **kwargs)
    message = e.value.body["message"]
    assert message.startswith(start) and message.count(". ") == 0 and message.endswith("."), message


def test_a_long_knowledge_base_question_is_refused_quickly(client, server):
  completed = server.services.worker.completed
  limit = server.services.settings.max_prompt_tokens
  for question in ("rotary " * limit, "r" * 60_000):
    start = time.monotonic()
    with pytest.raises(openai.BadRequestError) as e:
      client.chat.completions.create(model="kb/notes", max_tokens=8,
                                     messages=[{"role": "user", "content": question}])
    assert e.value.body["message"].startswith("messages: the knowledge-base question: ")
    assert time.monotonic() - start < 10
  assert server.services.worker.completed == completed


def test_stop_strings_are_bounded(client, model, server):
  settings = server.services.settings
  ask = lambda stop: client.chat.completions.create(model=model, messages=ASK, max_tokens=3,
                                                    temperature=0, stop=stop)
  assert ask([f"x{i}" for i in range(settings.max_stop)]).choices
  assert ask(["y" * settings.max_stop_chars]).choices
  for stop, says in [([f"x{i}" for i in range(settings.max_stop + 1)], "stop strings, more"),
                     (["y" * (settings.max_stop_chars + 1)], "a stop string of")]:
    with pytest.raises(openai.BadRequestError) as e:
      ask(stop)
    assert e.value.body["message"].startswith("stop: ") and says in e.value.body["message"]


def test_a_top_k_beyond_the_vocabulary_keeps_every_token(client, model):
  ask = lambda top_k: client.chat.completions.create(
      model=model, messages=ASK, max_tokens=6, temperature=1.0, seed=3,
      extra_body={"top_k": top_k}).choices[0].message.content
  assert ask(2**40) == ask(0)


def test_embeddings_are_bounded_and_run_on_the_worker(client, server):
  limit = server.services.settings.max_embed_inputs
  completed = server.services.worker.completed
  assert len(client.embeddings.create(model="m", input=["adam"] * limit).data) == limit
  assert server.services.worker.completed == completed + 1
  with pytest.raises(openai.BadRequestError) as e:
    client.embeddings.create(model="m", input=["adam"] * (limit + 1))
  assert e.value.body["message"] == (
      f"input: {limit + 1} texts, more than this server's limit of {limit} in one request.")
