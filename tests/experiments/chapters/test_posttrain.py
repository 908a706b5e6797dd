"""The post-training chapter end to end on a tiny llama: every stage from one SFT export, the
held-out report, its table, figure and four claims (their verdicts are whatever the tiny runs
give; the real numbers come from `make run`)."""

import json

from experiments.chapters import posttrain
from experiments.configs import posttrain_tour
from research import files
from research import tour
from tests import tiny_llama


def _persona_data(directory):
  words = lambda *ids: " ".join(f"t{i}" for i in ids)
  files.write_json(directory / "sft.json", [
      {"instruction": words(10 + i % 4), "output": words(40, 41)} for i in range(8)])
  files.write_json(directory / "prefs.json", [
      {"instruction": words(10 + i % 4), "chosen": words(40, 41), "rejected": words(50, 51)}
      for i in range(4)])
  files.write_json(directory / "dataset_info.json", {
      "sft": {"file_name": "sft.json"}, "prefs": {"file_name": "prefs.json", "ranking": True}})
  files.write_json(directory / "persona.json",
                   {"name": "t40", "creator": "t41", "held_out_questions": [words(20), words(21)]})


def test_every_stage_runs_from_one_sft_export_and_is_reported(tmp_path):
  model_dir = tiny_llama.write_tiny_llama(tmp_path / "base", max_positions=64)
  _persona_data(tmp_path)
  config = posttrain_tour.get_config("quick")
  config.update(model=str(model_dir), dataset_dir=str(tmp_path), sft_dataset="sft",
                pref_dataset="prefs", persona=str(tmp_path / "persona.json"), sft_steps=2,
                dpo_steps=1, rm_steps=1, ppo_steps=2, grpo_steps=2, max_new_tokens=3,
                samples=2, cutoff_len=24)
  out = tmp_path / "out"
  claims = posttrain.run_experiment(config, out, show_progress=False)
  assert len(claims) == 4 and all(isinstance(c, tour.Claim) for c in claims)
  report = json.loads((out / "posttrain.json").read_text())
  assert set(report) == {"sft", "dpo", "ppo", "grpo"}
  assert report["sft"]["kl"] == 0.0  # the SFT model against itself
  assert [report[m]["steps"] for m in ("dpo", "ppo", "grpo")] == [1, 2, 2]
  assert all(0.0 <= r["creator_rate"] <= 1.0 and r["minutes"] > 0 for r in report.values())
  assert (out / "posttrain.png").stat().st_size > 0
  assert [row[0] for row in posttrain.table(report).rows] == ["sft", "dpo", "ppo", "grpo"]
