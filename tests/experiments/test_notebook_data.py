"""The notebook's own examples in the tour, as data: the Chinese classification example and
magic_conch.json (experiments/data; the tour runs them on SmolLM2)."""

import json

from experiments.chapters import classify
from experiments.configs import classify as classify_config
from experiments.configs import finetune_tour
from experiments.configs import persona_lora
from research.data import sft as sft_data


def test_the_chinese_example_has_four_classes_one_demonstration_and_one_sentence_each():
  demos, texts, labels = classify.load_fixture(classify_config.get_config().notebook_data)
  assert len(demos) == 4 and "分析师报告" in demos  # the class of the cut answer it quotes
  assert all(isinstance(d, str) and d for d in demos.values())
  assert len(texts) == 4 and sorted(labels) == sorted(demos)  # each label a class, once
  assert not set(texts) & set(demos.values())


def test_magic_conch_is_two_alpaca_records_registered_and_loadable():
  records = json.loads((persona_lora.DATA / "magic_conch.json").read_text(encoding="utf-8"))
  assert len(records) == 2
  assert all(set(r) == {"instruction", "input", "output"} for r in records)
  info = sft_data.load_dataset_info(persona_lora.DATA)
  assert info["magic_conch"]["file_name"] == "magic_conch.json"
  examples = sft_data.load_dataset(persona_lora.DATA, "magic_conch")
  config = finetune_tour.get_config()
  assert examples[0].messages[0]["content"] == config.conch_question  # the one it is asked
  assert all(config.conch_name in e.messages[-1]["content"] for e in examples)
  assert finetune_tour.get_config("quick").conch_steps == 0  # quick mode skips the run
