"""DPO on LoRA: the loss starts at ln 2 (policy = reference) and learns the preference."""

import math

import pytest

from research.data import sft as sft_data
from research.finetune import dpo
from research.finetune import sft


def test_dpo_starts_at_ln2_and_prefers_the_chosen(finetune_config):
  config = finetune_config(stage="dpo", dataset="prefs", learning_rate=2e-2, max_steps=10,
                           pref_beta=0.1)
  _, result = dpo.run(config, show_progress=False)
  first, last = result.history[0], result.history[-1]
  assert first["loss"] == pytest.approx(math.log(2), abs=1e-6)
  assert first["rewards/margin"] == pytest.approx(0.0, abs=1e-6)
  assert last["loss"] < first["loss"] and last["rewards/margin"] > 0
  assert last["rewards/accuracy"] == 1.0


def test_dpo_needs_lora_and_a_ranking_dataset(finetune_config):
  with pytest.raises(ValueError, match="finetuning_type: DPO here needs 'lora'"):
    dpo.run(finetune_config(stage="dpo", dataset="prefs", finetuning_type="full"),
            show_progress=False)
  with pytest.raises(sft_data.DataError, match=r"dataset_info\.json: record 0 has no rejected"):
    dpo.run(finetune_config(stage="dpo", dataset="toy"), show_progress=False)


def test_preference_arrays_pad_both_halves_to_one_length():
  ignore = sft_data.IGNORE  # the prompt's labels: no loss there
  rows = [([1, 2, 3], [ignore, ignore, 3], [1, 4, 5, 6, 7], [ignore, ignore, 5, 6, 7]),
          ([1, 8], [ignore, 8], [1, 9, 9], [ignore, 9, 9])]
  arrays = dpo.preference_arrays(rows, pad_id=0)
  length = sft.bucket(4)  # the longest sequence, 5 ids, predicts 4 tokens
  for name in ("chosen", "rejected"):
    for part in ("inputs", "targets", "weights"):
      assert arrays[f"{name}_{part}"].shape == (2, length), (name, part)
  # log pi(answer | prompt) sums over the answer's tokens only
  assert arrays["chosen_weights"].sum(axis=1).tolist() == [1, 1]
  assert arrays["rejected_weights"].sum(axis=1).tolist() == [3, 2]
  assert arrays["lengths"].tolist() == [2 + 4, 1 + 2]  # chosen + rejected predicted tokens
