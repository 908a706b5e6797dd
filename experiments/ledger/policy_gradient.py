"""Ledger rows of PPO's and GRPO's objectives (research/nn/policy_gradient.py) against their
papers' formulas transcribed in NumPy, evaluated in float64 on the same float32 inputs."""

import numpy as np

from experiments import ledger
from research.nn import policy_gradient as pg

TOL = ledger.Tolerance(rtol=1e-5, atol=1e-6)  # test_policy_gradient.py's tolerance

# Three rows: a prompt (0s), the answer (1s), padding (0s).
MASK = np.array([[0, 0, 1, 1, 1, 1, 0],
                 [0, 1, 1, 0, 0, 0, 0],
                 [0, 0, 1, 1, 1, 1, 1]], np.float32)


def _normal(rng, shape, scale=1.0, loc=0.0):
  return (loc + scale * rng.standard_normal(shape)).astype(np.float32)


def gae_parity(fn=pg.gae, gamma=0.9, lam=0.8):
  """Schulman et al. 2016 eq. 16 row by row over the answer tokens, V after the last 0; the
  advantages whitened over the mask (unbiased variance, eps 1e-8)."""
  rng = np.random.default_rng(0)
  r, v = _normal(rng, MASK.shape), _normal(rng, MASK.shape)
  adv = np.zeros(MASK.shape)
  for i in range(MASK.shape[0]):
    next_a = next_v = 0.0
    for t in reversed([t for t in range(MASK.shape[1]) if MASK[i, t] > 0]):
      adv[i, t] = r[i, t] + gamma * next_v - v[i, t] + gamma * lam * next_a  # delta + g l A'
      next_a, next_v = adv[i, t], float(v[i, t])
  returns = (adv + v) * MASK
  mean = (adv * MASK).sum() / MASK.sum()
  var = ((adv - mean) ** 2 * MASK).sum() / (MASK.sum() - 1)
  whitened = (adv - mean) / np.sqrt(var + 1e-8) * MASK
  ours_adv, ours_ret = fn(r, v, MASK, gamma, lam)
  return {"advantages": (ours_adv, whitened), "returns": (ours_ret, returns)}


def grpo_parity(fn=pg.grpo_loss, clip=0.15, beta=0.3):
  """Shao et al. 2024: the clipped surrogate with the k3 KL estimate, per-answer token means."""
  rng = np.random.default_rng(1)
  logps, old, ref = (_normal(rng, MASK.shape, 0.3, -1.0) for _ in range(3))
  adv = _normal(rng, 3)
  lp = logps.astype(np.float64)
  ratio = np.exp(lp - old)
  kl = np.exp(ref - lp) - (ref - lp) - 1.0
  per_token = -np.minimum(ratio * adv[:, None],
                          np.clip(ratio, 1 - clip, 1 + clip) * adv[:, None]) + beta * kl
  want = np.mean((per_token * MASK).sum(1) / MASK.sum(1))
  loss, metrics = fn(logps, old, ref, adv, MASK, clip=clip, beta=beta)
  return {"loss": (loss, want), "kl": (metrics["kl"], (kl * MASK).sum() / MASK.sum())}


@ledger.row("gae", "research.nn.policy_gradient.gae (gamma 0.9, lambda 0.8)",
            "GAE recursion per answer, then masked whitening, NumPy float64", TOL,
            test="tests/nn/test_policy_gradient.py::test_gae_matches_numpy")
def gae(ctx):
  del ctx
  return gae_parity()


@ledger.row("grpo-loss", "research.nn.policy_gradient.grpo_loss (eps 0.15, beta 0.3)",
            "clipped surrogate + beta k3 KL, mean per answer then over answers, NumPy float64",
            TOL, test="tests/nn/test_policy_gradient.py::test_grpo_loss_matches_numpy")
def grpo(ctx):
  del ctx
  return grpo_parity()
