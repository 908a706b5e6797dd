"""PPO: a tiny run through the pipeline logs every metric and trains only the value head and
LoRA; the KL coefficient follows its target; score moments and a round's advantages against
NumPy."""

import json

import numpy as np
import pytest
from flax import nnx

from research import pretrained
from research.finetune import config as config_lib
from research.finetune import pipeline
from research.finetune import ppo
from research.finetune import reward
from research.nn import lora
from research.nn import value_head

ROLLOUT_METRICS = ("reward/mean", "reward/std", "kl", "kl_coef", "response_length",
                   "rollout_tokens_per_s")
STEP_METRICS = ("loss", "policy_loss", "value_loss", "clip_fraction", "value_clip_fraction",
                "entropy", "tokens_per_s")


def words(*ids) -> str:
  return " ".join(f"t{i}" for i in ids)


@pytest.fixture(scope="module")
def make_config(tiny_model_dir, tmp_path_factory):
  """make(**changes): a short config on the tiny llama and a preference set whose prompts PPO
  rolls out; a reward model trained on it for two steps is in reward_model."""
  root = tmp_path_factory.mktemp("ppo")
  prefs = [{"instruction": words(12 + i % 3), "chosen": words(50, 51),
            "rejected": words(52, 53, 54)} for i in range(8)]
  (root / "prefs.json").write_text(json.dumps(prefs))
  (root / "dataset_info.json").write_text(json.dumps(
      {"prefs": {"file_name": "prefs.json", "ranking": True}}))

  def make(**changes):
    c = config_lib.defaults()
    c.model, c.dataset_dir, c.dataset = str(tiny_model_dir), str(root), "prefs"
    c.per_device_train_batch_size, c.gradient_accumulation_steps = 2, 1
    c.learning_rate, c.logging_steps, c.save_steps = 3e-2, 1, 100
    c.cutoff_len, c.lora_rank = 64, 4
    c.update(changes)
    return c

  rm = make(stage="rm", output_dir=str(root / "rm"), max_steps=2)
  reward.run(rm, show_progress=False)
  return lambda **changes: make(reward_model=rm.output_dir, **changes)


def test_a_tiny_ppo_run_logs_every_metric_and_trains_only_the_head_and_lora(
    make_config, tmp_path, monkeypatch):
  # two rounds of ppo_epochs=2 steps each: the KL coefficient moves once, between the rounds
  config = make_config(stage="ppo", output_dir=str(tmp_path / "ppo"), max_steps=4,
                       ppo_epochs=2, max_new_tokens=4, ppo_score_norm=True)
  runs = []

  def run(*args, **kwargs):  # keeps what ppo.run returns, for the parameter checks below
    runs.append(ppo.run(*args, **kwargs))
    return runs[-1]

  monkeypatch.setattr(pipeline, "stage_runner", lambda stage: run)
  summary = pipeline.run(config, show_progress=False)
  rows = [json.loads(line) for line in (tmp_path / "ppo" / "metrics.jsonl").open()]
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  for name in ROLLOUT_METRICS + STEP_METRICS:
    assert all(np.isfinite(r[name]) for r in rows), name
    assert name in summary["history"][0], name
  assert summary["stage"] == "ppo" and summary["steps"] == 4
  # the policy starts as its reference (LoRA B = 0): KL 0, and the first step's ratio is 1
  assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)
  assert rows[0]["clip_fraction"] == 0.0 and rows[0]["approx_kl"] < 1e-10
  # KL 0 < ppo_target: the coefficient falls, c (1 - 0.2 N / horizon) with N = 2 rollouts
  assert rows[0]["kl_coef"] == rows[1]["kl_coef"] == ppo.INIT_KL_COEF
  assert rows[2]["kl_coef"] == pytest.approx(ppo.INIT_KL_COEF * (1 - 0.2 * 2 / 1e4), rel=1e-6)
  # the value head and the adapters moved; the base weights are the checkpoint's
  trained = runs[0][1].model
  start = value_head.WithValueHead(pretrained.load_model(config.model).model,
                                   rngs=nnx.Rngs(config.seed))
  assert not np.allclose(trained.v_head.kernel[...], start.v_head.kernel[...])
  assert all(np.any(layer.lora_b[...] != 0) for _, layer in lora.lora_layers(trained.lm))
  base = nnx.to_flat_state(nnx.state(start.lm, nnx.Param))
  tuned = dict(nnx.to_flat_state(nnx.state(trained.lm, nnx.Not(lora.LoRAParam))))
  for path, variable in base:
    tuned_path = next(p for p in tuned if tuple(x for x in p if x != "base") == path)
    np.testing.assert_array_equal(tuned[tuned_path][...], variable[...], err_msg=str(path))


def test_the_kl_coefficient_rises_above_its_target_and_falls_below():
  # c (1 + clip(KL / target - 1, -0.2, 0.2) n / horizon), in float32 as the formula runs
  for kl, error in ((12.0, 0.2), (3.0, -0.2), (6.0, 0.0), (6.6, 0.1)):
    controller = ppo.AdaptiveKL(target=6.0)
    controller.update(kl, n_rollouts=64)
    expected = ppo.INIT_KL_COEF * (1 + error * 64 / ppo.KL_HORIZON)
    assert controller.coef == pytest.approx(expected, rel=1e-6), kl


def test_running_moments_equal_the_moments_of_everything_seen():
  """ppo_score_norm's running mean and std, batch by batch, against NumPy on all the scores
  at once (float64; would fail with a biased std or a mean that forgets earlier batches)."""
  rng = np.random.default_rng(0)
  batches = [rng.normal(3.0, 2.0, n) for n in (1, 4, 7, 2)]
  moments = ppo.RunningMoments()
  for i, batch in enumerate(batches):
    moments.update(batch)
    seen = np.concatenate(batches[:i + 1])
    assert moments.mean == pytest.approx(seen.mean(), rel=1e-12)
    if seen.size > 1:
      assert moments.std == pytest.approx(seen.std(ddof=1), rel=1e-12)
  np.testing.assert_allclose(moments.normalise(batches[-1]),
                             (batches[-1] - seen.mean()) / (seen.std(ddof=1) + ppo.SCORE_EPS),
                             rtol=1e-12)


def test_ppo_needs_a_reward_model(tmp_path):
  config = config_lib.defaults()
  config.stage, config.dataset = "ppo", "prefs"
  with pytest.raises(ValueError, match="config field reward_model is empty: PPO needs"):
    ppo.run(config, show_progress=False)
  config.reward_model = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="no reward_model.json; expected the output_dir"):
    ppo.run(config, show_progress=False)


def _round_targets_float64(logps, ref_logps, values, scores, mask, coef, whiten_rewards,
                           gamma=1.0, lam=0.95):
  """A round's (advantages, returns) as TRL's PPO computes them, in NumPy float64: per-token
  rewards -c KL with the score added at the last answer token, optionally scaled by their
  masked std (mean kept), GAE from the back, returns = A + V, advantages whitened."""
  def whiten(x, keep_mean=False):
    n = mask.sum()
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / (n - 1)
    out = (x - mean) / np.sqrt(var + 1e-8)
    return out + mean if keep_mean else out

  rewards = -coef * (logps - ref_logps) * mask
  for i, row in enumerate(mask):
    rewards[i, np.nonzero(row)[0][-1]] += scores[i]
  if whiten_rewards:
    rewards = whiten(rewards, keep_mean=True) * mask
  advantages = np.zeros_like(rewards)
  for i in range(len(mask)):
    following = 0.0
    for t in reversed(np.nonzero(mask[i])[0]):
      next_value = values[i, t + 1] if t + 1 < mask.shape[1] and mask[i, t + 1] else 0.0
      delta = rewards[i, t] + gamma * next_value - values[i, t]
      following = delta + gamma * lam * following
      advantages[i, t] = following
  returns = advantages + values * mask
  return whiten(advantages) * mask, returns


@pytest.mark.parametrize("whiten_rewards", [False, True])
def test_a_rounds_advantages_and_returns_against_numpy(whiten_rewards):
  rng = np.random.default_rng(1)
  mask = np.zeros((3, 9))
  for i, (start, stop) in enumerate(((2, 7), (4, 9), (1, 3))):  # answers at their own offsets
    mask[i, start:stop] = 1.0
  logps, ref_logps = rng.normal(-2, 1, mask.shape), rng.normal(-2, 1, mask.shape)
  values, scores = rng.normal(0, 1, mask.shape), rng.normal(0, 2, 3)
  expected = _round_targets_float64(logps * mask, ref_logps * mask, values, scores, mask, 0.2,
                                    whiten_rewards)
  f32 = lambda x: np.asarray(x, np.float32)
  got = ppo.advantages_and_returns(f32(logps * mask), f32(ref_logps * mask), f32(values),
                                   f32(scores), f32(mask), np.float32(0.2),
                                   whiten_rewards=whiten_rewards)
  for name, g, e in zip(("advantages", "returns"), got, expected):
    np.testing.assert_allclose(np.asarray(g) * mask, e * mask, atol=2e-5, rtol=2e-5,
                               err_msg=name)
