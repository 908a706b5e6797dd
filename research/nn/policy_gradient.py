"""The policy-gradient objectives of post-training, each as its formula: PPO (Schulman et al.
2017) with a KL-penalised reward and GAE, as RLHF runs it (Ziegler et al. 2019, Ouyang et al.
2022), and GRPO (Shao et al. 2024, DeepSeekMath), PPO without a value model.

  reward        r_t = -c (log pi - log pi_ref)(y_t)  + score at the answer's last token
  GAE           delta_t = r_t + gamma V_{t+1} - V_t,   A_t = delta_t + gamma lam A_{t+1}
  PPO policy    L = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1 - eps, 1 + eps)),  rho = pi / pi_old
  PPO value     L = 1/2 mean_t max((V_t - R_t)^2, (clip(V_t, V_old -+ eps) - R_t)^2)
  GRPO          A_i = (r_i - mean_group r) / std_group r,
                L = mean_i mean_t [-min(rho A_i, clip(rho) A_i) + beta KL_t]

Every mask is a float B x T array, 1 on the answer's tokens (the prompt and padding are 0);
log-probs are per token, B x T.
"""

import jax
import jax.numpy as jnp

WHITEN_EPS = 1e-8  # under the square root of the variance, as TRL


def masked_mean(x, mask, axis=None):
  """sum(x m) / sum(m): the mean over the positions with mask 1."""
  return jnp.sum(x * mask, axis=axis) / jnp.maximum(jnp.sum(mask, axis=axis), 1.0)


def masked_var(x, mask):
  """The unbiased variance over the masked positions: n / (n - 1) mean_m (x - mean_m x)^2."""
  centred = x - masked_mean(x, mask)
  n = jnp.sum(mask)
  return masked_mean(centred ** 2, mask) * n / jnp.maximum(n - 1.0, 1.0)  # Bessel's n/(n-1)


def masked_whiten(x, mask, shift_mean=True):
  """(x - mean) / sqrt(var + eps) with the masked mean and variance; shift_mean=False adds the
  mean back (only the scale changes)."""
  mean = masked_mean(x, mask)
  whitened = (x - mean) * jax.lax.rsqrt(masked_var(x, mask) + WHITEN_EPS)
  return whitened if shift_mean else whitened + mean


def last_answer_token(mask_BxT):
  """1 at each row's last answer token, else 0 (all 0 for a row without one)."""
  length = mask_BxT.shape[1]
  last_B = length - 1 - jnp.argmax(mask_BxT[:, ::-1] > 0, axis=1)  # the last t with m_t = 1
  has_answer_B = jnp.any(mask_BxT > 0, axis=1)
  return jax.nn.one_hot(last_B, length, dtype=mask_BxT.dtype) * has_answer_B[:, None]


def kl_penalty_rewards(logps_BxT, ref_logps_BxT, scores_B, mask_BxT, kl_coef):
  """The per-token reward of RLHF: a KL penalty at every answer token, the score at the last."""
  kl_BxT = logps_BxT - ref_logps_BxT                      # log pi(y_t) - log pi_ref(y_t)
  rewards_BxT = -kl_coef * kl_BxT * mask_BxT              # r_t = -c KL_t
  return rewards_BxT + scores_B[:, None] * last_answer_token(mask_BxT)  # + score at the end


def gae(rewards_BxT, values_BxT, mask_BxT, gamma, lam, whiten=True):
  """(advantages, returns) by generalised advantage estimation (Schulman et al. 2016).

  Outside the answer V = r = 0, so the value after the last answer token is 0. The returns
  R = A + V (before whitening) are the value head's target; the advantages are then whitened
  over the answer tokens, as TRL does.
  """
  r_BxT = rewards_BxT * mask_BxT
  v_BxT = values_BxT * mask_BxT
  next_v_BxT = jnp.pad(v_BxT[:, 1:], ((0, 0), (0, 1)))   # V_{t+1}, 0 past the end
  delta_BxT = r_BxT + gamma * next_v_BxT - v_BxT         # delta_t = r_t + gamma V_{t+1} - V_t

  def backwards(next_a_B, delta_B):
    a_B = delta_B + gamma * lam * next_a_B               # A_t = delta_t + gamma lam A_{t+1}
    return a_B, a_B

  _, a_TxB = jax.lax.scan(backwards, jnp.zeros(delta_BxT.shape[0], delta_BxT.dtype),
                          delta_BxT.T, reverse=True)
  advantages_BxT = a_TxB.T * mask_BxT
  returns_BxT = advantages_BxT + v_BxT                   # R_t = A_t + V_t
  if whiten:
    advantages_BxT = masked_whiten(advantages_BxT, mask_BxT) * mask_BxT
  return advantages_BxT, returns_BxT


def ppo_policy_loss(logps, old_logps, advantages, mask, clip=0.2):
  """(loss, metrics) of PPO's clipped surrogate; all arrays B x T."""
  log_ratio = logps - old_logps
  ratio = jnp.exp(log_ratio)                                        # rho = pi / pi_old
  unclipped = -advantages * ratio                                   # -A rho
  clipped = -advantages * jnp.clip(ratio, 1.0 - clip, 1.0 + clip)   # -A clip(rho, 1-eps, 1+eps)
  loss = masked_mean(jnp.maximum(unclipped, clipped), mask)         # the pessimistic bound
  metrics = {"clip_fraction": masked_mean((clipped > unclipped).astype(jnp.float32), mask),
             "approx_kl": masked_mean(0.5 * log_ratio ** 2, mask)}  # 1/2 (log rho)^2
  return loss, metrics


def ppo_value_loss(values, old_values, returns, mask, clip=0.2):
  """(loss, metrics) of PPO's clipped value loss; all arrays B x T."""
  clipped_values = jnp.clip(values, old_values - clip, old_values + clip)
  unclipped_sq = (values - returns) ** 2                 # (V - R)^2
  clipped_sq = (clipped_values - returns) ** 2           # (clip(V, V_old -+ eps) - R)^2
  loss = 0.5 * masked_mean(jnp.maximum(unclipped_sq, clipped_sq), mask)
  return loss, {"value_clip_fraction":
                masked_mean((clipped_sq > unclipped_sq).astype(jnp.float32), mask)}


def adaptive_kl_coef(coef, kl, target, n_steps, horizon=10000.0):
  """The KL coefficient after n_steps, moved towards the target KL (Ziegler et al. 2019)."""
  error = jnp.clip(kl / target - 1.0, -0.2, 0.2)         # e = clip(KL / target - 1, -0.2, 0.2)
  return coef * (1.0 + error * n_steps / horizon)        # c <- c (1 + e n / horizon)


def group_advantages(rewards_B, group_size, eps=1e-4):
  """(r - mean_group r) / (std_group r + eps); the G answers of one prompt are adjacent rows."""
  r_NxG = rewards_B.reshape(-1, group_size)
  # the mean taken about the group's first reward: exact for a group of equal rewards, whose
  # advantages are then exactly 0 (a plain float32 mean can miss by an ulp, and dividing that
  # by eps makes it 1e-3)
  first_Nx1 = r_NxG[:, :1]
  mean_Nx1 = first_Nx1 + jnp.mean(r_NxG - first_Nx1, axis=1, keepdims=True)
  std_Nx1 = jnp.std(r_NxG, axis=1, keepdims=True, ddof=1)  # ddof 1, as TRL
  return ((r_NxG - mean_Nx1) / (std_Nx1 + eps)).reshape(-1)


def grpo_loss(logps_BxT, old_logps_BxT, ref_logps_BxT, advantages_B, mask_BxT, clip=0.2,
              beta=0.04):
  """(loss, metrics) of GRPO: the clipped surrogate with one advantage per answer and the k3
  estimate of KL(pi || pi_ref) at each token; averaged over each answer, then over answers."""
  ratio_BxT = jnp.exp(logps_BxT - old_logps_BxT)                     # rho = pi / pi_old
  a_Bx1 = advantages_B[:, None]
  unclipped_BxT = ratio_BxT * a_Bx1                                  # rho A
  clipped_BxT = jnp.clip(ratio_BxT, 1.0 - clip, 1.0 + clip) * a_Bx1  # clip(rho) A
  log_ref_ratio_BxT = ref_logps_BxT - logps_BxT                      # log pi_ref / pi
  kl_BxT = jnp.exp(log_ref_ratio_BxT) - log_ref_ratio_BxT - 1.0      # k3 >= 0
  per_token_BxT = -jnp.minimum(unclipped_BxT, clipped_BxT) + beta * kl_BxT
  loss = jnp.mean(masked_mean(per_token_BxT, mask_BxT, axis=1))      # mean_i mean_t
  clipped_fraction = (clipped_BxT < unclipped_BxT).astype(jnp.float32)
  return loss, {"clip_fraction": masked_mean(clipped_fraction, mask_BxT),
                "kl": masked_mean(kl_BxT, mask_BxT)}


def entropy(logits_BxTxV):
  """H = -sum_v p_v log p_v of the softmax at every position, B x T."""
  logp_BxTxV = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(logp_BxTxV) * logp_BxTxV, axis=-1)
