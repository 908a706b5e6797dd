"""The losses of the book, each as its formula: next-token cross-entropy, the log-probability of
an answer, the DPO family of preference losses and the reward model's pairwise loss. Their
faster forms (the head applied a chunk of rows at a time) are in `research.nn.fused`; PPO's and
GRPO's objectives are in `research.nn.policy_gradient`.

  cross-entropy   L = mean_t -log p(x_{t+1} | x_<=t)          (the correct token's probability)
  answer log p    log pi(y | x) = sum_t w_t log p(y_t | x, y_<t)
  DPO             L = -log sigmoid(beta z),   z = (log pi - log pi_ref)(y_w) - (same)(y_l)
  hinge, IPO      L = max(0, 1 - beta z),    L = (z - 1 / (2 beta))^2
  ORPO, SimPO     L = -log p(y_w) - beta log sigmoid(log odds(y_w) - log odds(y_l)),
                  L = -log sigmoid(beta (log p(y_w) - log p(y_l)) - gamma)    (mean log p per token)
  reward model    L = -log sigmoid(r(y_w) - r(y_l))
"""

import math

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


PREFERENCE_LOSSES = ("sigmoid", "hinge", "ipo", "orpo", "simpo")
REFERENCE_FREE = ("orpo", "simpo")  # these compare the policy's answers only


def log1mexp(x):
  """log(1 - e^x) for x < 0, without cancellation at either end (Maechler 2012)."""
  return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def preference_loss(kind, chosen_B, rejected_B, ref_chosen_B, ref_rejected_B, beta, *,
                    label_smoothing=0.0, simpo_gamma=0.5):
  """(per-row loss B, metrics) of one of the DPO family from the answers' log-probabilities.

  sigmoid, hinge and ipo compare log-ratios to the reference; orpo and simpo need no reference
  (pass None) and expect mean per-token log-probs. The metrics are batch means of the implicit
  rewards: beta (log pi - log pi_ref), or beta log pi without a reference.
  """
  if kind not in PREFERENCE_LOSSES:
    raise ValueError(f"config field pref_loss: {kind!r} is not one of "
                     f"{', '.join(PREFERENCE_LOSSES)}.")
  if kind in REFERENCE_FREE:
    reward_chosen, reward_rejected = beta * chosen_B, beta * rejected_B  # beta log pi(y)
  else:
    reward_chosen = beta * (chosen_B - ref_chosen_B)        # beta (log pi - log pi_ref)(y_w)
    reward_rejected = beta * (rejected_B - ref_rejected_B)  # beta (log pi - log pi_ref)(y_l)
    logits = (chosen_B - rejected_B) - (ref_chosen_B - ref_rejected_B)  # margin of log-ratios
  ls = label_smoothing
  if kind == "sigmoid":    # DPO (Rafailov et al. 2023, eq. 7); cDPO with labels flipped w.p. ls
    loss_B = (-(1.0 - ls) * jax.nn.log_sigmoid(beta * logits)
              - ls * jax.nn.log_sigmoid(-beta * logits))
  elif kind == "hinge":    # SLiC (Zhao et al. 2023): max(0, 1 - beta logits)
    loss_B = jax.nn.relu(1.0 - beta * logits)
  elif kind == "ipo":      # IPO (Azar et al. 2023, eq. 17): (logits - 1 / (2 tau))^2
    loss_B = (logits - 1.0 / (2.0 * beta)) ** 2
  elif kind == "orpo":     # ORPO (Hong et al. 2024): NLL(y_w) + beta (-log sigmoid(log odds ratio))
    c, r = (jnp.minimum(x, -1e-7) for x in (chosen_B, rejected_B))  # p < 1: finite odds
    log_odds = (c - r) - (log1mexp(c) - log1mexp(r))  # log [p_w / (1 - p_w)] / [p_l / (1 - p_l)]
    loss_B = -chosen_B - beta * jax.nn.log_sigmoid(log_odds)
  else:                    # SimPO (Meng et al. 2024): -log sigmoid(beta (c - r) - gamma)
    loss_B = -jax.nn.log_sigmoid(beta * ((chosen_B - rejected_B) - simpo_gamma / beta))
  margin = reward_chosen - reward_rejected
  metrics = {"rewards/chosen": jnp.mean(reward_chosen),
             "rewards/rejected": jnp.mean(reward_rejected),
             "rewards/margins": jnp.mean(margin),
             "rewards/accuracies": jnp.mean((reward_chosen > reward_rejected).astype(jnp.float32))}
  return loss_B, metrics


def pairwise_reward_loss(r_chosen_B, r_rejected_B):
  """(loss, metrics) of the reward model (Ouyang et al. 2022, eq. 1): the chosen answer's score
  above the rejected one's, -mean log sigmoid(r_w - r_l)."""
  loss = -jnp.mean(jax.nn.log_sigmoid(r_chosen_B - r_rejected_B))
  return loss, {"accuracy": jnp.mean((r_chosen_B > r_rejected_B).astype(jnp.float32))}
