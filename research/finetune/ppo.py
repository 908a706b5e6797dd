"""PPO with a reward model (stage "ppo"), as LLaMA-Factory runs TRL's: the policy is the SFT
model with LoRA and a value head (the critic, trained too), the reference is the same model
with its adapters off (or `ref_model`), the reward is a reward model's score.

One round = ppo_epochs * ppo_buffer_size optimizer steps of the one training loop:
  1. answers sampled by the policy for N = B * A * ppo_buffer_size prompts
  2. s = reward model at the answer's last token (ppo_score_norm: (s - mean) / std, running)
  3. r_t = -c (log pi_old - log pi_ref)(y_t), plus s at the last token (ppo_whiten_rewards)
  4. GAE on the old values: advantages A_t (whitened), returns R_t = A_t + V_t
  5. ppo_epochs passes over the N rollouts in mini-batches of A x B rows:
       loss = ppo_policy_loss(log pi, log pi_old, A) + vf_coef * ppo_value_loss(V, V_old, R)
  6. c <- c (1 + clip(KL / ppo_target - 1, -0.2, 0.2) N / horizon)   (KL: nats per answer)

max_steps counts optimizer steps, as in every stage here (a round is ppo_epochs *
ppo_buffer_size of them).
"""

import functools
import math
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from research.finetune import reward
from research.finetune import rollout
from research.finetune import sft
from research.finetune import trainer
from research.nn import losses
from research.nn import policy_gradient as pg
from research.nn import value_head

# TRL's PPO defaults, which LLaMA-Factory keeps
GAMMA = 1.0            # discount of GAE
LAM = 0.95             # lambda of GAE
CLIPRANGE = 0.2        # eps of the policy ratio's clip
CLIPRANGE_VALUE = 0.2  # eps of the value clip around the old values
VF_COEF = 0.1          # weight of the value loss
INIT_KL_COEF = 0.2     # c at the first round
KL_HORIZON = 10000.0   # rollouts over which c moves by at most 20%
SCORE_EPS = 1e-8       # under the running std of ppo_score_norm


class RunningMoments:
  """Mean and standard deviation of every score seen so far (Chan et al.'s parallel update)."""

  def __init__(self):
    self.count, self.mean, self.var = 0, 0.0, 0.0  # var: the population variance

  def update(self, x_N) -> None:
    x_N = np.asarray(x_N, np.float64)
    n, total = x_N.size, self.count + x_N.size
    delta = x_N.mean() - self.mean
    m2 = self.var * self.count + x_N.var() * n + delta ** 2 * self.count * n / total
    self.mean += delta * n / total
    self.count, self.var = total, m2 / total

  @property
  def std(self) -> float:
    """The unbiased standard deviation (n / (n - 1) of the population variance)."""
    return math.sqrt(self.var * self.count / max(self.count - 1, 1))

  def normalise(self, x_N):
    return (np.asarray(x_N) - self.mean) / (self.std + SCORE_EPS)


class AdaptiveKL:
  """The KL coefficient c, moved after each round towards the target KL per answer."""

  def __init__(self, target: float, coef: float = INIT_KL_COEF):
    self.target, self.coef = target, coef

  def update(self, kl: float, n_rollouts: int) -> None:
    self.coef = float(pg.adaptive_kl_coef(self.coef, kl, self.target, n_rollouts, KL_HORIZON))


def ppo_objective(model, batch, reference=None, dropout_key=None):
  """PPO's loss on B rollouts, the policy's log-probs and values from one pass."""
  del reference
  logits_BxTxV, values_BxT = model.logits_and_values(batch["inputs"], dropout_key=dropout_key,
                                                     remat=True)
  logps_BxT = losses.token_logps(logits_BxTxV, batch["targets"])
  mask = batch["mask"]
  policy_loss, policy_metrics = pg.ppo_policy_loss(logps_BxT, batch["old_logps"],
                                                   batch["advantages"], mask, CLIPRANGE)
  value_loss, value_metrics = pg.ppo_value_loss(values_BxT, batch["old_values"],
                                                batch["returns"], mask, CLIPRANGE_VALUE)
  loss = policy_loss + VF_COEF * value_loss                    # L = L_pi + vf_coef L_V
  metrics = {"policy_loss": policy_loss, "value_loss": value_loss,
             "entropy": pg.masked_mean(pg.entropy(logits_BxTxV), mask),
             **policy_metrics, **value_metrics}
  return loss, metrics


@nnx.jit
def values_of(model, inputs_BxT):
  """V at every position: the rollout's old values."""
  return model.values(inputs_BxT)


@functools.partial(jax.jit, static_argnames="whiten_rewards")
def advantages_and_returns(logps, ref_logps, old_values, scores_N, mask, kl_coef,
                           whiten_rewards=False):
  """Steps 3 and 4 on N x T arrays: (advantages, returns)."""
  rewards = pg.kl_penalty_rewards(logps, ref_logps, scores_N, mask, kl_coef)
  if whiten_rewards:  # the scale only: the mean stays, so the score's sign survives
    rewards = pg.masked_whiten(rewards, mask, shift_mean=False) * mask
  return pg.gae(rewards, old_values, mask, GAMMA, LAM)


class PPORollouts(rollout.RolloutSource):
  """The loop's on-policy source for PPO: each round's rollouts with their scores, old values,
  advantages and returns; the KL coefficient and the score moments carry over the rounds (a
  resumed run starts them afresh, at INIT_KL_COEF and no scores seen)."""

  def __init__(self, prompts, config, tokenizer, reward_model, reference=None):
    super().__init__(prompts, config, tokenizer, reference)
    self.reward_model = reward_model
    self.kl = AdaptiveKL(config.ppo_target)
    self.moments = RunningMoments()

  def policy_lm(self, model):
    return model.lm  # the value head does not sample

  def finish(self, out, prompts, model):
    del prompts
    mask, old_logps, ref_logps = out["mask"], out["old_logps"], out["ref_logps"]
    old_values = rollout.in_chunks(lambda x: values_of(model, x), self.batch, out["inputs"])
    scores = reward.score_rows(self.reward_model, out["tokens"], out["lengths"], self.batch)
    raw_scores = scores
    if self.config.ppo_score_norm:
      self.moments.update(scores)
      scores = self.moments.normalise(scores).astype(np.float32)
    advantages, returns = advantages_and_returns(
        old_logps, ref_logps, old_values, scores, mask, np.float32(self.kl.coef),
        whiten_rewards=self.config.ppo_whiten_rewards)
    kl_per_answer = np.sum((old_logps - ref_logps) * mask, axis=1)  # nats per answer
    metrics = {"reward/mean": float(np.mean(raw_scores)),
               "reward/std": float(np.std(raw_scores)),
               "kl": float(np.mean(kl_per_answer)), "kl_coef": self.kl.coef}
    self.kl.update(float(np.mean(kl_per_answer)), len(mask))
    arrays = {k: out[k] for k in ("inputs", "targets", "mask", "old_logps", "lengths")}
    arrays.update(old_values=old_values, advantages=advantages, returns=returns)
    return arrays, metrics


def run(config, show_progress=True, stop_at=None):
  """PPO from a config (stage "ppo"); returns (lm with the tuned LM, result)."""
  if not config.reward_model:
    raise ValueError("config field reward_model is empty: PPO needs the output_dir of an rm "
                     "stage (its adapter and value head).")
  reward_model, reward_tokenizer = reward.load_reward_model(config.reward_model)
  lm, _, train_examples, _ = sft.prepare(config)
  if reward_tokenizer.vocab_size != lm.tokenizer.vocab_size:
    raise ValueError(f"config field reward_model={config.reward_model!r}: its tokenizer has "
                     f"{reward_tokenizer.vocab_size} tokens, the policy's "
                     f"{lm.tokenizer.vocab_size}; the reward model scores the policy's tokens, "
                     "so both need one vocabulary.")
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  prompts = rollout.encode_prompts(lm.tokenizer, train_examples, config, source)
  rollouts = PPORollouts(prompts, config, lm.tokenizer, reward_model,
                         rollout.reference_model(config, lm.model))
  policy = value_head.WithValueHead(lm.model, rngs=nnx.Rngs(config.seed))
  result = trainer.train(policy, config, rollouts, None, ppo_objective,
                         trainable=value_head.trainable(config.finetuning_type),
                         show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model.lm
  return lm, result
