"""GRPO (stage "grpo", Shao et al. 2024): PPO without a value model. Each prompt is answered
G = num_generations times; an answer's advantage is its reward against its group's,

  A_i = (r_i - mean_group r) / (std_group r + eps)
  L = mean_i mean_t [-min(rho_t A_i, clip(rho_t, 1 - 0.2, 1 + 0.2) A_i) + grpo_beta KL_t]

with rho = pi / pi_old (the policy that sampled the round) and KL the k3 estimate to the
reference (the policy with its adapters off, or `ref_model`). The reward is a rule
(`reward_function`, research/finetune/rewards.py) or a reward model (`reward_model`, an rm
stage's output_dir, scored at the answer's last token).

A round (research/finetune/rollout.py) holds B * A * ppo_buffer_size rows, as PPO's does:
rows, not prompts, so a step's memory does not grow with G; that is B * A * ppo_buffer_size / G
prompts (it must divide), the G answers of one prompt in adjacent rows. ppo_epochs passes over
the round's rows, ppo_buffer_size optimizer steps each, then the next round is sampled by the
policy as trained so far. max_steps counts optimizer steps, as in every stage. There is no
evaluation split (val_size is unused).

  lm, result = grpo.run(config)
"""

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from research.finetune import reward
from research.finetune import rewards as rewards_lib
from research.finetune import rollout
from research.finetune import sft
from research.finetune import trainer
from research.nn import losses
from research.nn import policy_gradient as pg

CLIP = 0.2  # eps of the ratio's clip (TRL's and LLaMA-Factory's default)


def make_objective(beta: float, clip: float = CLIP):
  """GRPO's loss on B rows of a round: the policy's log-probs from one forward pass."""

  def objective(model, batch, reference=None, dropout_key=None):
    del reference  # the reference log-probs come with the round (ref_logps)
    logits_BxLxV, _ = model(batch["inputs"], dropout_key=dropout_key)
    logps_BxL = losses.token_logps(logits_BxLxV, batch["targets"])
    mask_BxL = batch["mask"]
    loss, metrics = pg.grpo_loss(logps_BxL, batch["old_logps"], batch["ref_logps"],
                                 batch["advantages"], mask_BxL, clip, beta)
    return loss, {"policy_loss": loss,
                  "entropy": pg.masked_mean(pg.entropy(logits_BxLxV), mask_BxL), **metrics}

  return objective


class GroupRollouts(rollout.RolloutSource):
  """Rollouts of G answers per prompt, scored by `reward(out, prompts) -> rewards_N`, with
  their group advantages."""

  def __init__(self, prompts, config, tokenizer, reward, reference=None):
    super().__init__(prompts, config, tokenizer, reference, repeats=config.num_generations)
    self.reward = reward

  def finish(self, out, prompts, model):
    arrays, metrics = super().finish(out, prompts, model)
    rewards_N = np.asarray(self.reward(out, prompts), np.float32)
    arrays["rewards"] = rewards_N
    arrays["advantages"] = np.asarray(pg.group_advantages(jnp.asarray(rewards_N),
                                                          self.repeats))
    # std over the round's answers; the advantages see the std within each group
    return arrays, {**metrics, "reward/mean": float(np.mean(rewards_N)),
                    "reward/std": float(np.std(rewards_N))}


def make_reward(config):
  """reward(out, prompts) -> one float per row, from reward_function or reward_model."""
  if config.reward_function and config.reward_model:
    raise ValueError("config fields reward_function and reward_model are both set: GRPO takes "
                     "its reward from one of them.")
  if config.reward_function:
    function = rewards_lib.make_reward_function(config.reward_function)
    return lambda out, prompts: rewards_lib.score_answers(
        function, [p.text for p in prompts], out["answers"])
  if config.reward_model:
    reward_model, _ = reward.load_reward_model(config.reward_model)
    chunk = config.per_device_train_batch_size
    return lambda out, prompts: reward.score_rows(reward_model, out["tokens"], out["lengths"],
                                                  chunk)
  raise ValueError("config fields reward_function and reward_model are empty: GRPO needs a "
                   "reward (e.g. reward_function: contains:WORD, or an rm stage's output_dir).")


def run(config, show_progress=True, stop_at=None):
  """GRPO from a config (stage "grpo"); returns (lm with the tuned model, loop.TrainResult)."""
  reward_fn = make_reward(config)  # a bad reward spec stops before the model loads
  lm, _, train_examples, _ = sft.prepare(config)
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  prompts = rollout.encode_prompts(lm.tokenizer, train_examples, config, source)
  batches = GroupRollouts(prompts, config, lm.tokenizer, reward_fn,
                          rollout.reference_model(config, lm.model))
  result = trainer.train(lm.model, config, batches, None, make_objective(config.grpo_beta),
                         show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model
  return lm, result
