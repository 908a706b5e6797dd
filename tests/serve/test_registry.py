"""research.serve.registry: the names, what each loads, and what is kept on disk."""

import json
import math

import pytest

from research.serve import registry as registry_lib
from research.serve import services as services_lib


@pytest.fixture
def model_dir(tmp_path):
  folder = tmp_path / "base"
  folder.mkdir()
  (folder / "config.json").write_text("{}")
  return folder


def _export(work_dir, job_id):
  job = work_dir / "jobs" / job_id
  (job / "export").mkdir(parents=True)
  (job / "export" / "config.json").write_text("{}")
  (job / "job.json").write_text(json.dumps({"id": job_id}))
  return job / "export"


def test_names_sources_and_a_created_model_kept_for_the_next_server(tmp_path, model_dir):
  models = registry_lib.Registry(str(model_dir), None, tmp_path / "work")
  assert models.names() == [str(model_dir), "smollm2-135m-instruct"]
  export = _export(tmp_path / "work", "20260101-000000-abcdef")  # seen at the next look
  assert models.get("ft-20260101-000000-abcdef:latest").source == str(export)
  assert models.get("base").source == str(model_dir)  # --model by its folder's name too
  made = models.create("mario", "ft-20260101-000000-abcdef", system="Be Mario.",
                       parameters={"temperature": 0.5})
  copied = models.copy("mario", "luigi")
  assert (copied.source, copied.system, copied.parameters) == (
      str(export), "Be Mario.", {"temperature": 0.5})
  again = registry_lib.Registry(str(model_dir), None, tmp_path / "work")
  assert again.get("mario") == made and again.names()[-2:] == ["luigi", "mario"]
  again.delete("luigi")
  assert "luigi" not in registry_lib.Registry(str(model_dir), None, tmp_path / "work").names()
  assert not list((tmp_path / "work").glob(".*.tmp"))  # written atomically


def test_what_cannot_be_created_or_deleted_says_why(tmp_path, model_dir):
  models = registry_lib.Registry(str(model_dir), None, tmp_path)
  _export(tmp_path, "j")
  for call, says in [
      (lambda: models.create("x", str(tmp_path / "nothing")), "from: "),
      (lambda: models.create("smollm2-135m-instruct", "base"), "model: 'smollm2-135m-instruct' "
                                                               "is a model this server has"),
      (lambda: models.create("kb/x", "base"), "model: 'kb/x' is not a model name"),
      (lambda: models.create("x", "base", adapter=str(tmp_path)), "adapter: "),
      (lambda: models.delete("smollm2-135m-instruct"), "model: 'smollm2-135m-instruct' is "
                                                       "packaged"),
      (lambda: models.delete("ft-j"), "model: 'ft-j' is a fine-tune job's export")]:
    with pytest.raises(ValueError) as e:
      call()
    assert str(e.value).startswith(says), e.value
  with pytest.raises(LookupError):
    models.delete("nothing")


def test_a_modelfile_parses_to_the_create_fields(tmp_path):
  text = ('FROM ./model.gguf\n# why\nsystem """You are\nMario."""\nPARAMETER temperature 0.2\n'
          'PARAMETER stop "<|im_end|>"\nPARAMETER stop w1\nLICENSE MIT\nADAPTER /abs/lora\n')
  assert registry_lib.parse_modelfile(text, tmp_path) == {
      "from": str(tmp_path / "model.gguf"), "system": "You are\nMario.",
      "adapter": "/abs/lora", "parameters": {"temperature": "0.2", "stop": ["<|im_end|>", "w1"]}}
  for bad, says in [("FROM x\nMESSAGE user hi", "modelfile line 2: MESSAGE"),
                    ("FROM x\nRUN y", "modelfile line 2: 'RUN'"),
                    ('SYSTEM """open', "modelfile line 1: its triple-quoted SYSTEM")]:
    with pytest.raises(ValueError, match=says):
      registry_lib.parse_modelfile(bad)


@pytest.mark.parametrize("value, seconds", [(None, 300.0), (0, 0.0), ("0", 0.0), (90, 90.0),
                                            ("5m", 300.0), ("1h30m", 5400.0), ("250ms", 0.25),
                                            ("-1", math.inf), (-1, math.inf), ("-5m", math.inf)])
def test_keep_alive_takes_ollamas_durations(value, seconds):
  assert services_lib.keep_alive_seconds(value) == seconds


def test_a_keep_alive_that_is_no_duration_is_400():
  with pytest.raises(services_lib.RequestError) as e:
    services_lib.keep_alive_seconds("5 minutes")
  assert e.value.status == 400 and e.value.message.startswith("keep_alive: '5 minutes'")
