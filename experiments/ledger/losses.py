"""Ledger rows of the loss module: each loss of research/nn/losses.py against its formula
transcribed in NumPy and evaluated in float64 on the same float32 inputs."""

import jax.numpy as jnp
import numpy as np

from experiments import ledger
from research.nn import losses

TOL = ledger.Tolerance(rtol=1e-6)  # float32 arithmetic against float64 (test_losses.py's rtol)


def _log_softmax(z):
  z = z - z.max(-1, keepdims=True)
  return z - np.log(np.exp(z).sum(-1, keepdims=True))  # log p_v = z_v - log sum_u exp z_u


def _inputs(seed=0, b=3, l=7, v=11):
  rng = np.random.default_rng(seed)
  logits = (3.0 * rng.standard_normal((b, l, v))).astype(np.float32)
  targets = rng.integers(0, v, (b, l)).astype(np.int32)
  weights = (rng.uniform(size=(b, l)) < 0.6).astype(np.float32)
  return logits, targets, weights


def _token_logps(logits, targets):
  logp = _log_softmax(logits.astype(np.float64))
  return np.take_along_axis(logp, targets[..., None], -1)[..., 0]


def cross_entropy_parity(fn=losses.cross_entropy):
  logits, targets, weights = _inputs()
  nll = -_token_logps(logits, targets)  # -log p(correct token)
  return {"mean": (fn(logits, targets), nll.mean()),
          "weighted": (fn(logits, targets, weights), (nll * weights).sum() / weights.sum())}


def sequence_logps_parity(fn=losses.sequence_logps):
  logits, targets, weights = _inputs(1)
  return fn(logits, targets, weights), (_token_logps(logits, targets) * weights).sum(-1)


def dpo_parity(fn=losses.preference_loss, beta=0.1):
  rng = np.random.default_rng(2)
  chosen, rejected, ref_chosen, ref_rejected = (
      (-20.0 + 5.0 * rng.standard_normal(6)).astype(np.float32) for _ in range(4))
  loss_B, metrics = fn("sigmoid", jnp.asarray(chosen), jnp.asarray(rejected),
                       jnp.asarray(ref_chosen), jnp.asarray(ref_rejected), beta)
  loss = jnp.mean(loss_B)
  c, r = (np.float64(beta) * (np.asarray(a, np.float64) - np.asarray(b, np.float64))
          for a, b in ((chosen, ref_chosen), (rejected, ref_rejected)))
  margin = c - r  # beta [(log pi - log pi_ref)(y_w) - (log pi - log pi_ref)(y_l)]
  want = -np.mean(-np.logaddexp(0.0, -margin))  # -log sigmoid(m) = log(1 + exp(-m))
  return {"loss": (loss, want),
          "rewards": ((metrics["rewards/chosen"], metrics["rewards/rejected"],
                       metrics["rewards/margins"]), (c.mean(), r.mean(), margin.mean()))}


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)  # log 1 / (1 + e^-x)


def preference_parity(fn=losses.preference_loss, beta=0.2, label_smoothing=0.1, gamma=0.6):
  """Each pref_loss per row against its paper's formula: sigmoid (with cDPO smoothing), hinge
  and ipo on summed log-ratios near -20, orpo and simpo on mean per-token log-probs."""
  rng = np.random.default_rng(3)
  c, r, rc, rr = ((-20.0 + 5.0 * rng.standard_normal(6)).astype(np.float32) for _ in range(4))
  mc, mr = (rng.uniform(-3.0, -0.05, 6).astype(np.float32) for _ in range(2))
  z = (c.astype(np.float64) - rc) - (r.astype(np.float64) - rr)  # margin of log-ratios
  ls = label_smoothing
  m64c, m64r = mc.astype(np.float64), mr.astype(np.float64)
  odds = lambda lp: np.exp(lp) / (1.0 - np.exp(lp))
  want = {"sigmoid": -(1 - ls) * _log_sigmoid(beta * z) - ls * _log_sigmoid(-beta * z),
          "hinge": np.maximum(0.0, 1.0 - beta * z),
          "ipo": (z - 1.0 / (2.0 * beta)) ** 2,
          "orpo": -m64c - beta * _log_sigmoid(np.log(odds(m64c) / odds(m64r))),
          "simpo": -_log_sigmoid(beta * (m64c - m64r) - gamma)}
  out = {}
  for kind, expected in want.items():
    args = (mc, mr, None, None) if kind in losses.REFERENCE_FREE else (c, r, rc, rr)
    loss_B, _ = fn(kind, *args, beta, label_smoothing=ls, simpo_gamma=gamma)
    out[kind] = (loss_B, expected)
  return out


@ledger.row("cross-entropy", "research.nn.losses.cross_entropy",
            "mean -log softmax(z)[target], NumPy float64", TOL,
            test="tests/nn/test_losses.py::test_cross_entropy_of_uniform_logits_is_log_v")
def cross_entropy(ctx):
  del ctx
  return cross_entropy_parity()


@ledger.row("sequence-logps", "research.nn.losses.sequence_logps",
            "sum_t w_t log softmax(z_t)[y_t], NumPy float64", TOL)
def sequence_logps(ctx):
  del ctx
  return sequence_logps_parity()


# The rewards are beta times differences of log-probabilities near -20, which float32 rounds
# in absolute terms (beta ulp(20) = 2e-7), whatever the size of the difference.
@ledger.row("dpo-loss", "research.nn.losses.preference_loss sigmoid (beta 0.1)",
            "-mean log sigmoid(beta (margin of log-ratios)), NumPy float64",
            ledger.Tolerance(rtol=1e-6, atol=1e-6))
def dpo(ctx):
  del ctx
  return dpo_parity()


# test_losses.py's tolerance: ipo squares margins of log-ratios that float32 rounds absolutely.
@ledger.row("preference-losses", "research.nn.losses.preference_loss, each pref_loss (beta 0.2)",
            "sigmoid/cDPO, hinge, ipo, orpo, simpo as published, NumPy float64",
            ledger.Tolerance(rtol=1e-5, atol=1e-6),
            test="tests/nn/test_losses.py::test_reference_losses_match_numpy")
def preference(ctx):
  del ctx
  return preference_parity()
