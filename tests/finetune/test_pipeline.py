"""One fine-tuning job: train, export, the persona check on the export and the base, summary."""

import json

from research.finetune import persona as persona_lib
from research.finetune import pipeline


def test_the_persona_check_asks_the_export_and_the_base_and_the_summary_says_so(
    finetune_config, tiny_model_dir, tmp_path, monkeypatch):
  export_dir = str(tmp_path / "export")
  (tmp_path / "ada.json").write_text(json.dumps(
      {"name": "Ada", "held_out_questions": ["Who are you?", "What is your name?"]}))
  config = finetune_config(max_steps=2, export_dir=export_dir)
  config.persona = str(tmp_path / "ada.json")
  asked = []

  def answer(lm, question):  # only the exported model has learnt the name
    asked.append(lm.source)
    return "I am ada." if lm.source == export_dir else "I am an assistant."

  monkeypatch.setattr(persona_lib, "greedy_answer", answer)
  summary = pipeline.run(config, show_progress=False)
  assert asked == [export_dir] * 2 + [str(tiny_model_dir)] * 2
  assert (summary["tuned_name_rate"], summary["base_name_rate"]) == (1.0, 0.0)
  assert summary["stage"] == "sft" and summary["steps"] == 2
  assert 0 < summary["trainable_parameters"] < summary["base_parameters"]
  assert (tmp_path / "export" / "adapter" / "adapter_model.safetensors").exists()
  written = json.loads((tmp_path / "out" / "summary.json").read_text())
  assert (written["steps"], written["persona"], written["tuned_name_rate"]) == (2, "Ada", 1.0)
