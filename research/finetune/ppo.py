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
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from research import pretrained
from research.data import sft as sft_data
from research.finetune import reward
from research.finetune import sft
from research.finetune import trainer
from research.generate import decode
from research.nn import lora
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
def policy_pass(model, inputs_BxT, targets_BxT):
  """(log pi of each target, V) of the policy: the rollout's old log-probs and values."""
  logits_BxTxV, values_BxT = model.logits_and_values(inputs_BxT)
  return losses.token_logps(logits_BxTxV, targets_BxT), values_BxT


@nnx.jit
def lm_logps(lm, inputs_BxT, targets_BxT):
  logits_BxTxV, _ = lm(inputs_BxT)
  return losses.token_logps(logits_BxTxV, targets_BxT)


@functools.partial(jax.jit, static_argnames="whiten_rewards")
def advantages_and_returns(logps, ref_logps, old_values, scores_N, mask, kl_coef,
                           whiten_rewards=False):
  """Steps 3 and 4 on N x T arrays: (advantages, returns)."""
  rewards = pg.kl_penalty_rewards(logps, ref_logps, scores_N, mask, kl_coef)
  if whiten_rewards:  # the scale only: the mean stays, so the score's sign survives
    rewards = pg.masked_whiten(rewards, mask, shift_mean=False) * mask
  return pg.gae(rewards, old_values, mask, GAMMA, LAM)


def adapters_off(lm):
  """The same model with every LoRA B (hence every update) at zero: the reference."""
  graphdef, adapters, rest = nnx.split(lm, lora.LoRAParam, ...)
  return nnx.merge(graphdef, jax.tree.map(jnp.zeros_like, adapters), rest)


def prompt_ids(tokenizer, examples, config, source) -> list[list[int]]:
  """Each conversation up to its last assistant turn, chat-templated with the generation
  prompt; longer than cutoff_len - max_new_tokens tokens keeps its end."""
  keep = config.cutoff_len - config.max_new_tokens
  if keep < 1:
    raise ValueError(f"config fields cutoff_len={config.cutoff_len} and max_new_tokens="
                     f"{config.max_new_tokens}: the prompt needs room within cutoff_len.")
  out = []
  for example in examples:
    text = tokenizer.apply_chat_template(example.messages[:-1], add_generation_prompt=True)
    out.append(tokenizer.encode(text)[-keep:])
  if not out:
    raise sft_data.DataError(f"{source}: no prompts to roll out.")
  return out


class Rollouts:
  """The loop's on-policy source: every round, rollouts by the current policy and their
  advantages; each step, one A x B mini-batch of them."""

  def __init__(self, prompts, config, reward_model, reference_lm, pad_id: int, eos_id):
    self.prompts, self.config = prompts, config
    self.reward_model, self.reference_lm = reward_model, reference_lm
    self.pad_id, self.eos_id = pad_id, eos_id
    self.batch, self.accum = config.per_device_train_batch_size, config.gradient_accumulation_steps
    self.per_round = self.batch * self.accum * config.ppo_buffer_size
    self.steps_per_round = config.ppo_epochs * config.ppo_buffer_size
    self.order = sft.StepBatches(prompts, self.per_round, 1, pad_id, config.seed)
    self.steps_per_epoch = self.order.steps_per_epoch * self.steps_per_round
    # one padded length for the run, so the step compiles once
    self.length = sft.bucket(max(map(len, prompts)) + config.max_new_tokens - 1)
    self.kl = AdaptiveKL(config.ppo_target)
    self.moments = RunningMoments()
    self.round, self.arrays, self.rollout_metrics = None, None, {}

  def collect(self, step: int, current_model) -> None:
    round_ = step // self.steps_per_round
    if round_ == self.round:
      return
    model = current_model()
    tick = time.perf_counter()
    prompts = [self.prompts[i] for i in self.order.indices(round_)]
    answers = self.sample(model.lm, prompts, jax.random.fold_in(
        jax.random.key(self.config.seed), round_))
    seconds = time.perf_counter() - tick
    rows = [(p + a, [sft_data.IGNORE] * len(p) + a) for p, a in zip(prompts, answers)]
    inputs, targets, mask = sft_data.pad_batch(rows, self.pad_id, self.length)
    full = np.full((len(rows), self.length + 1), self.pad_id, np.int32)
    for i, (ids, _) in enumerate(rows):
      full[i, :len(ids)] = ids
    lengths = np.array([len(ids) for ids, _ in rows], np.int32)
    reference_lm = self.reference_lm or adapters_off(model.lm)
    parts = {"old_logps": [], "old_values": [], "ref_logps": [], "scores": []}
    for i in range(0, len(rows), self.batch):  # B rows at a time: one compiled shape
      chunk = slice(i, i + self.batch)
      logps, values = policy_pass(model, inputs[chunk], targets[chunk])
      parts["old_logps"].append(logps)
      parts["old_values"].append(values)
      parts["ref_logps"].append(lm_logps(reference_lm, inputs[chunk], targets[chunk]))
      parts["scores"].append(reward.score(self.reward_model, full[chunk], lengths[chunk]))
    old_logps, old_values, ref_logps, scores = (np.concatenate(jax.device_get(parts[k]))
                                                for k in parts)
    del model, reference_lm  # the step donates the current model's arrays
    raw_scores = scores
    if self.config.ppo_score_norm:
      self.moments.update(scores)
      scores = self.moments.normalise(scores).astype(np.float32)
    advantages, returns = advantages_and_returns(
        old_logps, ref_logps, old_values, scores, mask, np.float32(self.kl.coef),
        whiten_rewards=self.config.ppo_whiten_rewards)
    kl_per_answer = np.sum((old_logps - ref_logps) * mask, axis=1)
    self.rollout_metrics = {
        "reward/mean": float(np.mean(raw_scores)), "reward/std": float(np.std(raw_scores)),
        "kl": float(np.mean(kl_per_answer)), "kl_coef": self.kl.coef,
        "response_length": float(np.mean([len(a) for a in answers])),
        "rollout_tokens_per_s": sum(map(len, answers)) / seconds}
    self.kl.update(float(np.mean(kl_per_answer)), len(rows))
    self.arrays = {"inputs": inputs, "targets": targets, "mask": mask, "old_logps": old_logps,
                   "old_values": old_values, "advantages": np.asarray(advantages),
                   "returns": np.asarray(returns), "lengths": lengths}
    self.round = round_

  def sample(self, lm, prompts, key) -> list[list[int]]:
    """Each prompt's answer ids, EOS included (the rollout)."""
    config = self.config
    answers = []
    for i, prompt in enumerate(prompts):
      tokens, n = decode.generate(
          lm, np.asarray([prompt], np.int32), config.max_new_tokens, jax.random.fold_in(key, i),
          temperature=config.temperature if config.do_sample else 0.0,
          top_k=config.top_k or None, top_p=config.top_p, eos_id=self.eos_id,
          pad_id=self.pad_id)
      answers.append(np.asarray(tokens[0, len(prompt):len(prompt) + int(n[0])]).tolist())
    return answers

  def step_batch(self, step: int) -> dict:
    """Mini-batch k of epoch e of this round: a fresh permutation of the N rollouts per epoch."""
    epoch, k = divmod(step % self.steps_per_round, self.config.ppo_buffer_size)
    order = np.random.default_rng([self.config.seed, self.round, epoch]).permutation(
        self.per_round)
    picked = order[k * self.batch * self.accum:(k + 1) * self.batch * self.accum]
    shape = (self.accum, self.batch)
    return {name: v[picked].reshape(shape + v.shape[1:]) for name, v in self.arrays.items()}

  def metrics(self, step: int) -> dict:
    del step
    return dict(self.rollout_metrics)


def run(config, show_progress=True, stop_at=None):
  """PPO from a config (stage "ppo"); returns (lm with the tuned LM, result)."""
  if not config.reward_model:
    raise ValueError("config field reward_model is empty: PPO needs the output_dir of an rm "
                     "stage (its adapter and value head).")
  reward_model, _ = reward.load_reward_model(config.reward_model)
  lm, _, train_examples, _ = sft.prepare(config)
  source = str(Path(config.dataset_dir) / "dataset_info.json")
  if config.ref_model:
    reference_lm = pretrained.load_model(config.ref_model).model
  elif config.finetuning_type == "lora":
    reference_lm = None  # the policy with its adapters off, at every round
  else:
    reference_lm = nnx.clone(lm.model)  # full fine-tuning: the model as it starts
  pad_id = lm.tokenizer.pad_id if lm.tokenizer.pad_id is not None else 0
  prompts = prompt_ids(lm.tokenizer, train_examples, config, source)
  rollouts = Rollouts(prompts, config, reward_model, reference_lm, pad_id, lm.tokenizer.eos_id)
  policy = value_head.WithValueHead(lm.model, rngs=nnx.Rngs(config.seed))
  result = trainer.train(policy, config, rollouts, None, ppo_objective,
                         trainable=value_head.trainable(config.finetuning_type),
                         show_progress=show_progress, stop_at=stop_at)
  lm.model = result.model.lm
  return lm, result
