"""The fine-tuning commands as a user runs them: a LLaMA-Factory YAML in, an export out, and
chat on the export."""

import json
import subprocess
import sys
from pathlib import Path

from research import pretrained
from research.finetune import persona

REPO = Path(__file__).resolve().parents[2]


def _run(*args):
  proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_yaml_finetune_exports_a_model_that_chat_answers_from(tiny_model_dir, dataset_dir,
                                                              tmp_path):
  (tmp_path / "train.yaml").write_text(
      f"model_name_or_path: {tiny_model_dir}\nstage: sft\nfinetuning_type: lora\n"
      f"dataset: toy\ndataset_dir: {dataset_dir}\ncutoff_len: 64\nlearning_rate: 3.0e-2\n"
      "max_steps: 6\nper_device_train_batch_size: 2\ngradient_accumulation_steps: 1\n"
      f"output_dir: {tmp_path / 'run'}\nexport_dir: {tmp_path / 'export'}\nlora_rank: 4\n")
  out = _run("experiments.finetune", f"--yaml={tmp_path / 'train.yaml'}")
  assert "finetune: 6 steps" in out
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["steps"] == 6 and summary["trainable_parameters"] > 0
  assert (tmp_path / "export" / "adapter" / "adapter_model.safetensors").exists()

  question = "t10 t20"
  expected = persona.greedy_answer(pretrained.load_model(str(tmp_path / "export")), question,
                                   max_new_tokens=5)
  answer = _run("experiments.chat", f"--model={tmp_path / 'export'}", f"--prompt={question}",
                "--temperature=0", "--max_new_tokens=5")
  assert answer.strip() == expected
  # the adapter also lies in output_dir, as LLaMA-Factory leaves it for its merge/chat files
  assert (tmp_path / "run" / "adapter_config.json").is_file()
  with_adapter = pretrained.load_model(str(tiny_model_dir), adapter=tmp_path / "run")
  assert persona.greedy_answer(with_adapter, question, max_new_tokens=5) == expected
