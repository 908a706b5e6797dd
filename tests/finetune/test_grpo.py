"""GRPO on the tiny llama: the rule rewards, the round's group advantages, and one short run
through the pipeline that stops, resumes and logs every metric the issue names."""

import json
import types

import numpy as np
import pytest

from research.finetune import grpo
from research.finetune import pipeline
from research.finetune import rewards
from research.finetune import rollout

METRICS = ("loss", "reward/mean", "reward/std", "kl", "policy_loss", "clip_fraction", "entropy",
           "response_length", "rollout_tokens_per_s", "tokens_per_s")


def answer_length(prompt, answer):
  """A user's reward function for the module:function form."""
  return float(len(answer.split())) + 0.5 * (prompt == "q")


def test_rule_rewards_score_as_named():
  contains = rewards.make_reward_function("contains:Ada")
  assert [contains("", a) for a in ("I am ada.", "ADA", "Adam", "Bob")] == [1, 1, 1, 0]
  valid = rewards.make_reward_function("valid_json")
  assert [valid("", a) for a in ('{"a": [1, 2]}', "3", "{'a': 1}", "{")] == [1, 1, 0, 0]
  mine = rewards.make_reward_function("tests.finetune.test_grpo:answer_length")
  assert rewards.score_answers(mine, ["q", "p"], ["a b c", ""]) == [3.5, 0.0]
  for bad, words in (("contains:", "name the word"), ("nothing", "expected contains"),
                     ("tests.finetune.test_grpo:missing", "cannot import"),
                     ("tests.finetune.test_grpo:METRICS", "not a function")):
    with pytest.raises(ValueError, match=words):
      rewards.make_reward_function(bad)


def test_a_round_carries_rewards_and_zero_mean_advantages_per_group():
  config = types.SimpleNamespace(per_device_train_batch_size=3, gradient_accumulation_steps=1,
                                 ppo_buffer_size=2, ppo_epochs=1, num_generations=3, seed=0,
                                 max_new_tokens=2, do_sample=True, temperature=1.0, top_k=0,
                                 top_p=1.0)
  tokenizer = types.SimpleNamespace(eos_id=1, pad_id=0)
  prompts = [rollout.Prompt([5, 6], "a"), rollout.Prompt([7], "b")]
  source = grpo.GroupRollouts(prompts, config, tokenizer,
                              lambda out, ps: [len(a) for a in out["answers"]])
  assert source.prompts_per_round == 2
  answers = ["x", "xx", "xxxxxx", "y", "y", "y"]
  arrays, metrics = source.finish({"answers": answers, "mask": np.ones((6, 3))},
                                  source.round_prompts(0), None)
  r = np.array([1, 2, 6, 1, 1, 1], np.float64)
  group = r.reshape(2, 3)
  expected = (group - group.mean(1, keepdims=True)) / (group.std(1, ddof=1, keepdims=True)
                                                      + 1e-4)  # TRL's: std with ddof 1
  np.testing.assert_allclose(arrays["advantages"], expected.reshape(-1), rtol=1e-5, atol=1e-6)
  assert metrics["reward/mean"] == pytest.approx(2.0)
  assert metrics["reward/std"] == pytest.approx(np.std(r), rel=1e-6)
  with pytest.raises(ValueError, match="multiple of num_generations"):
    grpo.GroupRollouts(prompts, types.SimpleNamespace(**{**vars(config), "num_generations": 4}),
                       tokenizer, None)


def test_grpo_runs_stops_resumes_and_logs_its_metrics(finetune_config, tmp_path):
  config = finetune_config(
      stage="grpo", reward_function="contains:t4", num_generations=2,
      gradient_accumulation_steps=1, ppo_buffer_size=1, ppo_epochs=2, max_new_tokens=4,
      max_steps=4, logging_steps=1, save_steps=2, learning_rate=1e-2, temperature=1.0,
      top_k=0, top_p=1.0)
  _, first = grpo.run(config, show_progress=False, stop_at=2)
  assert first.steps == 2
  summary = pipeline.run(config, check_base=False, show_progress=False)  # resumes at 2
  assert summary["steps"] == 4 and summary["stage"] == "grpo"
  rows = [json.loads(line) for line in (tmp_path / "out" / "metrics.jsonl").open()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for row in rows + summary["history"]:
    missing = [m for m in METRICS if m not in row]
    assert not missing, (missing, sorted(row))
    assert all(np.isfinite(row[m]) for m in METRICS)
    assert 1 <= row["response_length"] <= 4 and 0 <= row["reward/mean"] <= 1
  assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the first step's policy is the reference
  # steps 1-2 train on round 0, steps 3-4 on round 1 (sampled by the resumed model)
  assert rows[0]["reward/mean"] == rows[1]["reward/mean"]
  assert rows[0]["rollout_tokens_per_s"] == rows[1]["rollout_tokens_per_s"]
  assert rows[2]["rollout_tokens_per_s"] != rows[1]["rollout_tokens_per_s"]


def test_a_reward_model_scores_each_row_at_its_last_token(monkeypatch):
  """The wiring to the rm stage (research/finetune/reward.py): load once, score the
  right-padded rows B at a time with their lengths. Stand-ins keep this cheap."""
  calls = []
  monkeypatch.setattr(grpo.reward, "load_reward_model",
                      lambda path: (calls.append(("load", path)) or "rm", "tokenizer"))
  monkeypatch.setattr(grpo.reward, "score",
                      lambda rm, tokens, lengths: (calls.append(("score", rm, tokens.shape))
                                                   or tokens[np.arange(len(tokens)), lengths - 1]))
  config = types.SimpleNamespace(reward_function="", reward_model="runs/rm",
                                 per_device_train_batch_size=2)
  reward = grpo.make_reward(config)
  tokens = np.array([[3, 4, 9, 0], [3, 7, 0, 0], [3, 4, 5, 6]])
  scores = reward({"tokens": tokens, "lengths": np.array([3, 2, 4])}, None)
  np.testing.assert_array_equal(scores, [9, 7, 6])
  assert calls == [("load", "runs/rm"), ("score", "rm", (2, 4)), ("score", "rm", (1, 4))]
  for fields, words in (({"reward_function": "valid_json"}, "both set"),
                        ({"reward_model": ""}, "are empty")):
    with pytest.raises(ValueError, match=words):
      grpo.make_reward(types.SimpleNamespace(**{**vars(config), **fields}))
