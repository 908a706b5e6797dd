"""Fine-tune jobs: the form's checks, the datasets each stage offers, the loss curve's points.
(Jobs that train and export run through the web page in test_web.py.)"""

import json
import re

import pytest

from research.serve import jobs


@pytest.fixture
def data_dir(tmp_path):
  (tmp_path / "dataset_info.json").write_text(json.dumps({
      "persona": {"file_name": "p.json"}, "notes": {"file_name": "n.json"},
      "persona_prefs": {"file_name": "pp.json", "ranking": True}}))
  return tmp_path


def test_each_stage_offers_its_own_datasets(data_dir, tmp_path):
  assert jobs.datasets_for(data_dir) == ["notes", "persona"]
  assert jobs.datasets_for(data_dir, "dpo") == ["persona_prefs"]
  assert jobs.datasets_for(tmp_path / "nowhere") == []


@pytest.mark.parametrize("field, value, says", [
    ("lora_rank", True, "expected a number"),
    ("lora_rank", "2.5", "expected a whole number"),
    ("learning_rate", "inf", "expected a finite number"),
    ("learning_rate", 0, "expected more than 0.0"),
    ("warmup_ratio", 0, None),  # its lower bound is allowed
    ("lora_rank", 0, "expected at least 1 and at most 1024"),
    ("lr_scheduler_type", "step", "expected one of ['cosine', 'linear', 'constant']"),
    ("bogus", 1, "not a fine-tuning knob"),
])
def test_bad_fields_are_named(data_dir, field, value, says):
  form = {"dataset": "persona", field: value}
  if says is None:
    assert jobs.parse_form(form, data_dir)[field] == value
  else:
    with pytest.raises(ValueError, match=re.escape(f"field {field}: {says}")):
      jobs.parse_form(form, data_dir)


def test_dataset_and_stage_must_agree(data_dir):
  with pytest.raises(ValueError, match=r"field dataset: missing; expected one of \['notes'"):
    jobs.parse_form({}, data_dir)
  with pytest.raises(ValueError, match="expected one of the preference datasets"):
    jobs.parse_form({"stage": "dpo", "dataset": "persona"}, data_dir)
  assert jobs.parse_form({"stage": "dpo", "dataset": "persona_prefs"}, data_dir)["stage"] == "dpo"
  with pytest.raises(ValueError, match="expected a JSON object"):
    jobs.parse_form(["persona"], data_dir)


def test_loss_points_skip_a_half_written_line_and_keep_eval_loss(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(
      '{"step": 1, "loss": 2.5}\n{"step": 1, "learning_rate": 0.1}\n'
      '{"step": 2, "loss": 2.0, "eval_loss": 2.2}\n{"step": 3, "lo')
  assert jobs.loss_points(tmp_path) == [{"step": 1, "loss": 2.5},
                                        {"step": 2, "loss": 2.0, "eval_loss": 2.2}]
  assert jobs.loss_points(tmp_path / "not-yet") == []


def test_predict_uses_the_export_else_the_newest_checkpoint(tmp_path):
  assert jobs.tuned_source(tmp_path) is None
  (tmp_path / "train" / "checkpoints" / "3").mkdir(parents=True)
  assert jobs.tuned_source(tmp_path) == "checkpoint"
  (tmp_path / "export").mkdir()
  assert jobs.tuned_source(tmp_path) == "checkpoint"  # a folder without a model is no export
  (tmp_path / "export" / "config.json").write_text("{}")
  assert jobs.tuned_source(tmp_path) == "export"


def test_predict_fields_default_and_are_named(data_dir):
  assert jobs.eval_datasets(data_dir) == ["notes", "persona", "persona_prefs"]
  assert jobs.parse_predict_form({"eval_dataset": "persona_prefs"}, data_dir) == {
      "eval_dataset": "persona_prefs", **jobs.PREDICT_DEFAULTS}
  with pytest.raises(ValueError, match=r"field eval_dataset: missing; expected one of"):
    jobs.parse_predict_form({"max_samples": 3}, data_dir)
  with pytest.raises(ValueError, match=r"field max_samples: expected a whole number"):
    jobs.parse_predict_form({"eval_dataset": "notes", "max_samples": 2.5}, data_dir)
