"""A tiny llama checkpoint with a word-level tokenizer and a chat template, written once;
the toy datasets over its vocabulary, and a short fine-tuning config on both."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from research.finetune import config as config_lib  # pylint: disable=wrong-import-position
from tests import tiny_llama  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
  return tiny_llama.write_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), max_positions=128)


def words(*ids) -> str:
  return " ".join(f"t{i}" for i in ids)


@pytest.fixture()
def dataset_dir(tmp_path):
  """An alpaca SFT set, a sharegpt set and a preference set over the tiny vocabulary."""
  sft = [{"instruction": words(10 + i % 5, 20), "input": words(30) if i % 2 else "",
          "output": words(40 + i % 5, 41, 42)} for i in range(12)]
  share = [{"conversations": [{"from": "human", "value": words(11)},
                              {"from": "gpt", "value": words(43)}]}]
  prefs = [{"instruction": words(12 + i % 3), "chosen": words(50, 51),
            "rejected": words(52, 53, 54)} for i in range(8)]
  (tmp_path / "sft.json").write_text(json.dumps(sft))
  (tmp_path / "share.json").write_text(json.dumps(share))
  (tmp_path / "prefs.json").write_text(json.dumps(prefs))
  (tmp_path / "dataset_info.json").write_text(json.dumps({
      "toy": {"file_name": "sft.json"},
      "share": {"file_name": "share.json", "formatting": "sharegpt"},
      "prefs": {"file_name": "prefs.json", "ranking": True}}))
  return tmp_path


@pytest.fixture()
def finetune_config(tiny_model_dir, dataset_dir, tmp_path):
  """make(**changes): a short LoRA SFT config on the tiny llama and the toy set."""
  def make(**changes):
    c = config_lib.defaults()
    c.model, c.dataset_dir, c.dataset = str(tiny_model_dir), str(dataset_dir), "toy"
    c.output_dir = str(tmp_path / "out")
    c.per_device_train_batch_size, c.gradient_accumulation_steps = 2, 2
    c.learning_rate, c.max_steps, c.logging_steps, c.save_steps = 3e-2, 12, 4, 4
    c.cutoff_len, c.lora_rank = 64, 4
    c.update(changes)
    return c
  return make
