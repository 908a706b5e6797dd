"""Structured outputs and log-probs through the official `ollama` and `openai` clients.

JSON needs a vocabulary that can spell it, so those tests run against a second server over
a byte-level tiny llama (tests/tiny_llama.py); log-probs use the session's word-level one,
whose tokens read back to their ids one to one."""

import json

import fastjsonschema
import httpx
import jax
import jax.numpy as jnp
import numpy as np
import ollama
import openai
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests import tiny_llama
from tests.serve.conftest import KEY

ASK = [{"role": "user", "content": "t10 t11 t12"}]
JSON_ASK = [{"role": "user", "content": "Describe a thing as JSON."}]
BUDGET = 120  # tokens: more than the longest answer the bounded schemas below allow
JSON_MODE_BUDGET = 48
LOGPROB_ATOL = 1e-5  # the KV cache against a full recompute in float32 (tests/generate)


@pytest.fixture(scope="module")
def byte_server(tmp_path_factory):
  import research  # pylint: disable=g-import-not-at-top
  from research.serve import app as app_lib  # pylint: disable=g-import-not-at-top
  from research.serve import launch  # pylint: disable=g-import-not-at-top
  from research.serve import services as services_lib  # pylint: disable=g-import-not-at-top
  from research.serve.settings import Settings  # pylint: disable=g-import-not-at-top
  directory = tiny_llama.write_tiny_byte_llama(tmp_path_factory.mktemp("tiny-byte-llama"))
  work = tmp_path_factory.mktemp("serve-bytes")
  settings = Settings(model=str(directory), api_key=KEY, work_dir=work, max_new_tokens=128,
                      max_prompt_tokens=128, queue_size=8)
  services = services_lib.Services(settings, lm=research.load_model(str(directory)))
  with launch.ServerThread(app_lib.create_app(settings, services)) as running:
    running.services = services
    yield running


def _clients(server):
  return (ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"}),
          openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0))


@pytest.fixture(scope="module")
def byte_clients(byte_server):
  return _clients(byte_server) + (byte_server.services.model_name,)


# Small schemas whose every answer fits in BUDGET tokens of one byte each: strings of at
# most 3 characters (an escape takes 6 bytes), bounded integers, at most 2 array items, no
# other properties; so the grammar itself closes the object before the budget runs out.
FIELDS = st.one_of(
    st.just({"type": "string", "maxLength": 3}),
    st.just({"type": "integer", "minimum": -99, "maximum": 999}),
    st.just({"type": "boolean"}),
    st.lists(st.sampled_from(["x", "yz", "w w"]), min_size=1, max_size=3,
             unique=True).map(lambda values: {"enum": values}),
    st.sampled_from([{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "boolean"}]).map(
        lambda items: {"type": "array", "items": items, "maxItems": 2}))
SCHEMAS = st.dictionaries(st.sampled_from("abcde"), FIELDS, min_size=1, max_size=3).flatmap(
    lambda properties: st.lists(st.sampled_from(sorted(properties)), unique=True).map(
        lambda required: {"type": "object", "properties": properties, "required": required,
                          "additionalProperties": False}))


@given(schema=SCHEMAS, seed=st.integers(0, 2**31 - 1))
@settings(max_examples=5, deadline=None)
def test_every_answer_parses_and_validates_against_its_schema(byte_clients, schema, seed):
  ollama_client, openai_client, name = byte_clients
  validate = fastjsonschema.compile(schema)
  by_ollama = ollama_client.chat(model=name, messages=JSON_ASK, format=schema,
                                 options={"temperature": 1.0, "seed": seed,
                                          "num_predict": BUDGET})
  by_openai = openai_client.chat.completions.create(
      model=name, messages=JSON_ASK, temperature=1.0, seed=seed, max_tokens=BUDGET,
      response_format={"type": "json_schema",
                       "json_schema": {"name": "thing", "schema": schema, "strict": True}})
  for text, reason in [(by_ollama.message.content, by_ollama.done_reason),
                       (by_openai.choices[0].message.content, by_openai.choices[0].finish_reason)]:
    assert reason == "stop", (schema, text)  # the grammar closed it, not the budget
    validate(json.loads(text))


def test_json_mode_answers_are_json_objects_streamed_or_not(byte_clients):
  ollama_client, openai_client, name = byte_clients
  options = {"temperature": 1.0, "seed": 5, "num_predict": JSON_MODE_BUDGET}
  parts = list(ollama_client.chat(model=name, messages=JSON_ASK, format="json", options=options,
                                  stream=True))
  whole = ollama_client.chat(model=name, messages=JSON_ASK, format="json", options=options)
  streamed = "".join(p.message.content for p in parts)
  assert streamed == whole.message.content
  chat = openai_client.chat.completions.create(
      model=name, messages=JSON_ASK, temperature=1.0, seed=5, max_tokens=JSON_MODE_BUDGET,
      response_format={"type": "json_object"})
  for text, reason in [(streamed, parts[-1].done_reason),
                       (chat.choices[0].message.content, chat.choices[0].finish_reason)]:
    if reason == "stop":
      assert isinstance(json.loads(text), dict), text
    else:  # any object has no bound on its length: cut at the budget, it cannot parse
      assert reason == "length" and text.startswith("{"), text


def test_a_bad_schema_and_a_vocabulary_without_json_are_400(byte_clients, server):
  ollama_client, openai_client, name = byte_clients
  with pytest.raises(ollama.ResponseError) as e:
    ollama_client.chat(model=name, messages=JSON_ASK, format={"type": "strng"})
  assert e.value.status_code == 400 and e.value.error.startswith("format: not a JSON schema")
  with pytest.raises(openai.BadRequestError) as e:
    openai_client.chat.completions.create(model=name, messages=JSON_ASK,
                                          response_format={"type": "xml"})
  assert e.value.body["message"].startswith("response_format.type: expected")
  words, _ = _clients(server)  # t0..t63 cannot spell "{"
  with pytest.raises(ollama.ResponseError) as e:
    words.chat(model=server.services.model_name, messages=ASK, format="json")
  assert e.value.status_code == 400 and "vocabulary" in e.value.error


# -- log-probs: the model's own distribution, whatever the sampler did ---------------------

def _check_logprobs(server, entries, top_logprobs):
  """Each entry (token, logprob, top_logprobs) against jax.nn.log_softmax of the model's
  logits for the same prefix, computed at once without the cache."""
  lm = server.services.lm()
  tok = lm.tokenizer
  prompt = tok.encode(tok.apply_chat_template(ASK))
  tokens = [tok.token_id(e.token) for e in entries]
  assert tokens and None not in tokens
  logits_1xTxV, _ = lm.model(jnp.asarray([prompt + tokens]))
  want_TxV = np.asarray(jax.nn.log_softmax(logits_1xTxV[0, len(prompt) - 1:-1]))
  for t, entry in enumerate(entries):
    np.testing.assert_allclose(entry.logprob, want_TxV[t, tokens[t]], atol=LOGPROB_ATOL)
    top = np.argsort(-want_TxV[t], kind="stable")[:top_logprobs]
    assert [tok.token_id(alt.token) for alt in entry.top_logprobs] == top.tolist()
    np.testing.assert_allclose([alt.logprob for alt in entry.top_logprobs], want_TxV[t, top],
                               atol=LOGPROB_ATOL)


def test_ollama_logprobs_equal_the_models_log_softmax(server):
  client, _ = _clients(server)
  ask = dict(model=server.services.model_name, messages=ASK, logprobs=True, top_logprobs=3,
             options={"temperature": 1.5, "top_k": 5, "seed": 3, "num_predict": 8})
  whole = client.chat(**ask)
  _check_logprobs(server, whole.logprobs, 3)
  parts = list(client.chat(**ask, stream=True))
  assert [e.token for p in parts for e in (p.logprobs or [])] == [
      e.token for e in whole.logprobs]
  assert " ".join(e.token for e in whole.logprobs).startswith(whole.message.content.strip())


def test_openai_logprobs_equal_the_models_log_softmax(server):
  _, client = _clients(server)
  ask = dict(model=server.services.model_name, messages=ASK, logprobs=True, top_logprobs=3,
             temperature=0.7, seed=4, max_tokens=8)
  whole = client.chat.completions.create(**ask)
  content = whole.choices[0].logprobs.content
  _check_logprobs(server, content, 3)
  assert all(e.bytes == list(e.token.encode()) for e in content)
  chunks = list(client.chat.completions.create(**ask, stream=True))
  streamed = [e.token for c in chunks if c.choices and c.choices[0].logprobs
              for e in c.choices[0].logprobs.content]
  assert streamed == [e.token for e in content]
  plain = client.chat.completions.create(**dict(ask, logprobs=None, top_logprobs=None))
  assert plain.choices[0].logprobs is None
  assert plain.choices[0].message.content == whole.choices[0].message.content
  r = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                 headers={"Authorization": f"Bearer {KEY}"},
                 json={"model": ask["model"], "messages": ASK, "top_logprobs": 2})
  assert r.status_code == 400 and r.json()["error"]["message"].startswith("top_logprobs: ")
