"""The losses of the book, each as its formula: next-token cross-entropy, the log-probability of
an answer, and DPO's preference loss. Their faster forms (the head applied a chunk of rows at a
time) are in `research.nn.fused`.

  cross-entropy   L = mean_t -log p(x_{t+1} | x_<=t)          (the correct token's probability)
  answer log p    log pi(y | x) = sum_t w_t log p(y_t | x, y_<t)
  DPO             L = -log sigmoid(beta [(log pi - log pi_ref)(y_w) - (log pi - log pi_ref)(y_l)])
"""

import jax
import jax.numpy as jnp


def token_logps(logits_BxLxV, targets_BxL):
  """log p(target_t) at every position: log softmax(logits)[target]."""
  logp_BxLxV = jax.nn.log_softmax(logits_BxLxV.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp_BxLxV, targets_BxL[..., None], axis=-1)[..., 0]


def cross_entropy(logits_BxLxV, targets_BxL, weights_BxL=None):
  """Mean of -log p(correct token) over the positions with weight (all by default)."""
  nll_BxL = -token_logps(logits_BxLxV, targets_BxL)
  if weights_BxL is None:
    return jnp.mean(nll_BxL)
  return jnp.sum(nll_BxL * weights_BxL) / jnp.maximum(jnp.sum(weights_BxL), 1.0)


def sequence_logps(logits_BxLxV, targets_BxL, weights_BxL):
  """sum_t w_t log p(target_t): the log-probability of each row's answer (prompt weight 0)."""
  return jnp.sum(token_logps(logits_BxLxV, targets_BxL) * weights_BxL, axis=-1)


def dpo_loss(chosen_B, rejected_B, ref_chosen_B, ref_rejected_B, beta: float):
  """(loss, metrics) of DPO from the answers' log-probabilities under the policy and the
  reference (Rafailov et al. 2023, eq. 7)."""
  reward_chosen = beta * (chosen_B - ref_chosen_B)        # beta (log pi - log pi_ref)(y_w)
  reward_rejected = beta * (rejected_B - ref_rejected_B)  # beta (log pi - log pi_ref)(y_l)
  margin = reward_chosen - reward_rejected
  loss = -jnp.mean(jax.nn.log_sigmoid(margin))
  metrics = {"rewards/chosen": jnp.mean(reward_chosen),
             "rewards/rejected": jnp.mean(reward_rejected),
             "rewards/accuracy": jnp.mean((margin > 0).astype(jnp.float32)),
             "rewards/margin": jnp.mean(margin)}
  return loss, metrics
