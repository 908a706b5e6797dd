"""The reward model: learns the toy preference, saves a folder PPO loads back, and refuses a
dataset without pairs."""

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file

from research import pretrained
from research.data import sft as sft_data
from research.finetune import reward
from research.nn import value_head


def test_reward_model_learns_saves_and_loads_back(finetune_config):
  config = finetune_config(stage="rm", dataset="prefs", val_size=2, max_steps=4,
                           gradient_accumulation_steps=1, logging_steps=2, eval_steps=4)
  lm, result = reward.run(config, show_progress=False)
  first, last = result.history[0], result.history[-1]
  # every pair prefers the same answer, so a learned score separates all of them
  assert last["loss"] < first["loss"]
  assert last["accuracy"] == 1.0
  assert result.evals[-1]["eval_accuracy"] == 1.0

  # the folder PPO loads: TRL's value head names and shapes, a PEFT adapter, the base named
  folder = config.output_dir
  head = load_file(f"{folder}/{reward.HEAD_FILE}")
  assert set(head) == {"v_head.summary.weight", "v_head.summary.bias"}
  assert head["v_head.summary.weight"].shape == (1, lm.config.width)
  assert head["v_head.summary.bias"].shape == (1,)
  adapter = load_file(f"{folder}/adapter_model.safetensors")
  assert any(k.endswith("lora_B.weight") and np.any(v != 0) for k, v in adapter.items())

  loaded, tokenizer = reward.load_reward_model(folder)
  assert tokenizer.encode("t50 t51") == lm.tokenizer.encode("t50 t51")
  batch = reward.reward_arrays(
      [([1, 5, 6, 7], None, [1, 8, 9], None), ([1, 2], None, [1, 3, 4, 5, 6], None)], 0)
  tokens = np.concatenate([batch["chosen_tokens"], batch["rejected_tokens"]])
  lengths = np.concatenate([batch["chosen_lengths"], batch["rejected_lengths"]])
  # the trained head's scores, not a fresh head's (training used another seed)
  np.testing.assert_allclose(reward.score(loaded, tokens, lengths),
                             reward.score(result.model, tokens, lengths), atol=1e-6, rtol=0)


def test_reward_needs_a_ranking_dataset(finetune_config):
  with pytest.raises(sft_data.DataError,
                     match=r"dataset_info\.json: dataset 'toy' is not a preference set"):
    reward.run(finetune_config(stage="rm", dataset="toy"), show_progress=False)


def test_a_fully_tuned_reward_model_saves_its_weights_and_loads_back(finetune_config,
                                                                    tiny_model_dir, tmp_path):
  config = finetune_config(stage="rm", finetuning_type="full")
  lm = pretrained.load_model(str(tiny_model_dir))
  model = value_head.WithValueHead(lm.model, rngs=nnx.Rngs(3))
  norm = lm.model.final_norm.scale  # a tuned base weight: loading the base would miss it
  norm.set_value(norm[...] + 0.5)
  folder = reward.save_reward_model(model, lm, config, tmp_path / "rm")
  assert not (folder / "adapter_config.json").exists()
  loaded, _ = reward.load_reward_model(folder)
  tokens, lengths = np.array([[1, 5, 6, 7], [1, 2, 0, 0]], np.int32), np.array([4, 2], np.int32)
  np.testing.assert_allclose(reward.score(loaded, tokens, lengths),
                             reward.score(model, tokens, lengths), atol=1e-6, rtol=0)
