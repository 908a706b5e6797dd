import json

import ml_collections
import numpy as np
import pytest

from research import runs


@pytest.mark.parametrize("arg, expected", [
    (None, {}),
    ("quick", {"quick": True}),
    ("inits=xavier+kaiming", {"inits": ["xavier", "kaiming"]}),
    ("quick,steps=10,lr=3e-4,name=a", {"quick": True, "steps": 10, "lr": 3e-4, "name": "a"}),
    ("depths=2+4,bias=false", {"depths": [2, 4], "bias": False}),
])
def test_parse_config_arg(arg, expected):
  assert runs.parse_config_arg(arg) == expected


def test_parse_config_arg_rejects_an_empty_key():
  with pytest.raises(ValueError, match="key=value"):
    runs.parse_config_arg("=3")


def test_run_writes_config_metrics_and_tensorboard(tmp_path):
  config = ml_collections.ConfigDict({"lr": 0.1, "seed": 3})
  with runs.Run(tmp_path / "run", config) as run:
    run.log(0, loss=np.float32(2.5))
    run.log(1, loss=1.5, note="x")
  assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"lr": 0.1, "seed": 3}
  rows = runs.read_metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == [0, 1]
  assert [r["loss"] for r in rows] == [2.5, 1.5]
  assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "run" / "tb").iterdir())


def test_a_run_continuing_from_a_checkpoint_drops_the_rows_it_logs_again(tmp_path):
  # what a run killed after logging steps 1-3, with a checkpoint at step 2, leaves: the row of
  # step 3, which the resumed run logs again, and a line torn by the kill
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "loss": 4.0 - s}) + "\n" for s in (1, 2, 3))
                  + '{"step": 4, "lo')
  with runs.Run(tmp_path, continues_from=2, tensorboard=False) as run:
    run.log(3, loss=0.5)
  assert [(r["step"], r["loss"]) for r in runs.read_metrics(tmp_path)] == [
      (1, 3.0), (2, 2.0), (3, 0.5)]
  with runs.Run(tmp_path, tensorboard=False) as run:  # a log of claims keeps every row
    run.log(0, holds=1.0)
  assert [r["step"] for r in runs.read_metrics(tmp_path)] == [1, 2, 3, 0]


def test_seed_everything_is_reproducible():
  import jax
  a = jax.random.normal(runs.seed_everything(7), (3,))
  first = np.random.rand()
  b = jax.random.normal(runs.seed_everything(7), (3,))
  assert np.random.rand() == first
  np.testing.assert_array_equal(a, b)


def _config():
  return ml_collections.ConfigDict({"steps": 3, "lr": 0.1, "model": {"width": 8, "heads": 2}})


def test_override_sets_fields_nested_ones_by_dots_and_locks():
  config = runs.override(_config(), runs.parse_config_arg("steps=5,model.width=16"))
  assert (config.steps, config.model.width, config.model.heads) == (5, 16, 2)
  with pytest.raises(AttributeError, match="locked"):
    config.stepz = 1


@pytest.mark.parametrize("arg, nearest", [("stepz=10", "steps"), ("model.widht=4", "model.width"),
                                          ("quik", "quick"), ("lr.x=1", "lr")])
def test_override_of_a_missing_field_names_it_and_the_nearest(arg, nearest):
  key = arg.split("=")[0]
  with pytest.raises(runs.ConfigKeyError) as caught:
    runs.override(_config(), runs.parse_config_arg(arg))
  assert str(caught.value) == (f"config override {key}={runs.parse_config_arg(arg)[key]}: the "
                               f"config has no field {key!r}; the nearest valid one is "
                               f"{nearest!r}.")
