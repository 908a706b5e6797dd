"""The registry through the official clients: a fine-tune export and a created model are
listed and answer when named; create, copy, delete, pull; keep_alive unloads."""

import json

import httpx
import ollama
import openai
import pytest

from research.serve import jobs as jobs_lib
from tests.serve import web_fixtures
from tests.serve.conftest import KEY

JOB = "20260101-000000-export"
ASK = [{"role": "user", "content": "w10 w11"}]
GREEDY = {"temperature": 0, "num_predict": 4}


@pytest.fixture(scope="module")
def client(server):
  return ollama.Client(host=server.url, headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def exported(server):
  """A job folder as jobs.py leaves a finished export: the citing model, whose greedy
  answer is "[1] [1] ..." (the session's tiny llama answers in "t<i>" words)."""
  job_dir = server.services.settings.work_dir / "jobs" / JOB
  web_fixtures.write_citing_model(job_dir / "export")
  (job_dir / "job.json").write_text(json.dumps({"id": JOB, "fields": {}, "created": 1.0}))
  return jobs_lib.export_model_name(JOB), job_dir / "export"


def test_an_export_is_listed_and_a_chat_naming_it_answers_from_it(client, server, exported):
  name, _ = exported
  assert name in [m.model for m in client.list().models]
  assert client.chat(model=name, messages=ASK, options=GREEDY).message.content == (
      "[1] [1] [1] [1]")
  assert [m.model for m in client.ps().models] == [name]
  plain = client.chat(model=server.services.model_name, messages=ASK, options=GREEDY)
  assert "[1]" not in plain.message.content  # the server's own model is back, unrestarted
  ids = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY).models.list()
  assert name in [m.id for m in ids]


def test_create_copy_and_delete_a_model(client, server, exported):
  import research  # pylint: disable=g-import-not-at-top
  name, folder = exported
  done = client.create(model="citer", from_=name, system="w5 w6",
                       parameters={"num_predict": 2, "temperature": 0})
  assert done.status == "success"
  answer = client.chat(model="citer", messages=ASK)
  tok = research.load_model(str(folder)).tokenizer
  system_first = [{"role": "system", "content": "w5 w6"}] + ASK
  assert answer.prompt_eval_count == len(tok.encode(tok.apply_chat_template(system_first)))
  assert answer.message.content == "[1] [1]" and answer.done_reason == "length"
  assert client.copy("citer", "citer-2").status == "success"
  names = [m.model for m in client.list().models]
  assert "citer" in names and "citer-2" in names
  assert client.delete("citer-2").status == "success"
  assert "citer-2" not in [m.model for m in client.list().models]
  for call, status in [(lambda: client.delete("citer-2"), 404),
                       (lambda: client.copy("nothing", "x"), 404),
                       (lambda: client.delete("smollm2-135m-instruct"), 400)]:
    with pytest.raises(ollama.ResponseError) as e:
      call()
    assert e.value.status_code == status, e.value.error
  # the registry is kept on disk for the next server
  assert "citer" in json.loads((server.services.registry.state_file).read_text())


def test_delete_of_the_packaged_model_says_why(server):
  r = httpx.request("DELETE", f"{server.url}/api/delete", json={"model": "smollm2-135m-instruct"},
                    headers={"Authorization": f"Bearer {KEY}"})
  assert r.status_code == 400 and r.json()["error"] == (
      "model: 'smollm2-135m-instruct' is packaged with this server and cannot be deleted.")


def test_create_from_a_modelfile_beside_the_export(client, server, exported):
  _, folder = exported
  modelfile = folder.parent / "Modelfile"  # FROM relative to the Modelfile's folder
  modelfile.write_text('# a comment\nFROM ./export\nTEMPLATE """{{ .Prompt }}"""\n'
                       'PARAMETER num_predict 3\nPARAMETER temperature 0\n')
  r = httpx.post(f"{server.url}/api/create", headers={"Authorization": f"Bearer {KEY}"},
                 json={"model": "citer-file", "path": str(modelfile)})
  statuses = [json.loads(line)["status"] for line in r.text.splitlines()]
  assert r.status_code == 200 and statuses[-1] == "success", r.text
  assert statuses[0].startswith("left out the Modelfile's Go TEMPLATE")
  assert f"using {folder}" in statuses
  assert client.chat(model="citer-file", messages=ASK).message.content == "[1] [1] [1]"


# FROM the packaged model, which every server has: the test needs no model another test made
# (pytest-xdist may run that one in another process).
PACKAGED = "smollm2-135m-instruct"


@pytest.mark.parametrize("fields, says", [
    ({"from_": "/nowhere/model.gguf"}, "from: '/nowhere/model.gguf' is neither"),
    ({"from_": PACKAGED, "quantize": "q4_K_M"}, "quantize: this server does not quantize"),
    ({"from_": PACKAGED, "files": {"m.gguf": "sha256:00"}}, "files: this server takes no"),
    ({"from_": PACKAGED, "parameters": {"temprature": 1}}, "parameters.temprature: not an"),
    ({"from_": PACKAGED, "template": "{{ .Prompt }}"}, "template: this server renders Jinja"),
    ({}, "from: name the model to build on")])
def test_create_refuses_what_it_cannot_use_in_one_sentence(client, fields, says):
  with pytest.raises(ollama.ResponseError) as e:
    client.create(model="bad", **fields)
  assert e.value.status_code == 400 and e.value.error.startswith(says), e.value.error


def test_pull_says_models_come_from_local_files(client):
  with pytest.raises(ollama.ResponseError) as e:
    client.pull("llama3.2")
  assert e.value.status_code == 400 and "local files" in e.value.error


def test_keep_alive_zero_unloads_and_negative_keeps(client, server):
  model = server.services.model_name
  client.chat(model=model, messages=ASK, options=GREEDY, keep_alive=-1)
  assert [(m.model, m.expires_at.year) for m in client.ps().models] == [(model, 2999)]
  client.chat(model=model, messages=ASK, options=GREEDY, keep_alive=0)
  assert client.ps().models == []
  client.generate(model=model, keep_alive="1h")  # a load request
  assert [m.model for m in client.ps().models] == [model]
  client.generate(model=model, keep_alive=0)  # Ollama's way to unload now
  assert client.ps().models == []
  with pytest.raises(ollama.ResponseError) as e:
    client.chat(model=model, messages=ASK, keep_alive="soon")
  assert e.value.status_code == 400 and e.value.error.startswith("keep_alive: 'soon'")
