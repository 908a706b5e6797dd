"""PPO and GRPO against NumPy float64 transcriptions of the published formulas, written here
from the papers (independent of research/nn/policy_gradient.py), plus one law per objective.

Float32 against float64: rtol 1e-5, and atol 1e-6 where a value can be near 0."""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.nn import policy_gradient as pg

RTOL, ATOL = 1e-5, 1e-6


def _close(got, want):
  np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=RTOL, atol=ATOL)


def _mask():
  """Three rows: a prompt (0s), the answer (1s), padding (0s); answers of 4, 2 and 5 tokens."""
  return np.array([[0, 0, 1, 1, 1, 1, 0],
                   [0, 1, 1, 0, 0, 0, 0],
                   [0, 0, 1, 1, 1, 1, 1]], np.float32)


def _normal(seed, shape, scale=1.0, loc=0.0):
  return (loc + scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def _np_masked_mean(x, m):
  return (x * m).sum() / m.sum()


def _np_whiten(x, m, shift_mean=True):
  x, m = np.asarray(x, np.float64), np.asarray(m, np.float64)
  mean = _np_masked_mean(x, m)
  var = ((x - mean) ** 2 * m).sum() / (m.sum() - 1.0)  # unbiased
  out = (x - mean) / np.sqrt(var + 1e-8)
  return out if shift_mean else out + mean


def test_masked_mean_and_whiten_match_numpy():
  x, m = _normal(0, (3, 7), 3.0, 1.5), _mask()
  _close(pg.masked_mean(x, m), _np_masked_mean(x.astype(np.float64), m))
  _close(pg.masked_mean(x, m, axis=1), (x * m).sum(1) / m.sum(1))
  _close(pg.masked_whiten(x, m), _np_whiten(x, m))
  _close(pg.masked_whiten(x, m, shift_mean=False), _np_whiten(x, m, shift_mean=False))


@hypothesis.given(hnp.arrays(np.float32, (3, 7), elements=st.floats(-10, 10, width=32)))
def test_whitened_values_have_mean_0_and_unbiased_variance_1_on_the_mask(x):
  hypothesis.assume(np.ptp(x[_mask() > 0]) > 1e-2)
  w = np.asarray(pg.masked_whiten(x, _mask()), np.float64)[_mask() > 0]
  np.testing.assert_allclose(w.mean(), 0.0, atol=1e-5)
  np.testing.assert_allclose(w.var(ddof=1), 1.0, rtol=1e-3)  # eps 1e-8 under the root


def _np_last_index(m_row):
  return max(t for t in range(len(m_row)) if m_row[t] > 0)


def test_kl_penalty_rewards_match_numpy():
  m = _mask()
  logps, ref, scores = _normal(1, (3, 7), 1.0, -2.0), _normal(2, (3, 7), 1.0, -2.0), _normal(3, 3)
  want = -0.05 * (logps.astype(np.float64) - ref) * m  # r_t = -c (log pi - log pi_ref)
  for i in range(3):
    want[i, _np_last_index(m[i])] += scores[i]
  _close(pg.kl_penalty_rewards(logps, ref, scores, m, 0.05), want)


def _np_gae(r, v, m, gamma, lam):
  """Schulman et al. 2016, eq. 16, on each row's answer tokens; V after the last is 0."""
  r, v = np.asarray(r, np.float64), np.asarray(v, np.float64)
  adv = np.zeros_like(r)
  for i in range(r.shape[0]):
    answer = [t for t in range(r.shape[1]) if m[i, t] > 0]
    next_a = next_v = 0.0
    for t in reversed(answer):
      delta = r[i, t] + gamma * next_v - v[i, t]
      adv[i, t] = delta + gamma * lam * next_a
      next_a, next_v = adv[i, t], v[i, t]
  returns = (adv + v) * m
  return _np_whiten(adv, m) * m, returns, adv


def test_gae_matches_numpy():
  m = _mask()
  r, v = _normal(4, (3, 7)), _normal(5, (3, 7))
  want_adv, want_ret, raw = _np_gae(r, v, m, gamma=0.9, lam=0.8)
  adv, ret = pg.gae(r, v, m, 0.9, 0.8)
  _close(adv, want_adv)
  _close(ret, want_ret)
  _close(pg.gae(r, v, m, 0.9, 0.8, whiten=False)[0], raw)


_gae_returns_lam1_gamma1 = jax.jit(lambda r, v: pg.gae(r, v, _mask(), 1.0, 1.0)[1])


@hypothesis.given(hnp.arrays(np.float32, (3, 7), elements=st.floats(-5, 5, width=32)),
                  hnp.arrays(np.float32, (3, 7), elements=st.floats(-5, 5, width=32)))
def test_gae_with_lambda_1_and_gamma_1_returns_the_sum_of_future_rewards(r, v):
  m = _mask()
  returns = _gae_returns_lam1_gamma1(r, v)
  future = np.flip(np.cumsum(np.flip(r * m, 1), 1), 1) * m  # R_t = sum_{k >= t} r_k
  np.testing.assert_allclose(returns, future, atol=1e-4)  # sums of 5 values up to 5 in f32


def _np_ppo_policy(logps, old, adv, m, clip):
  ratio = np.exp(np.asarray(logps, np.float64) - old)
  surrogate = np.maximum(-adv * ratio, -adv * np.clip(ratio, 1 - clip, 1 + clip))
  return _np_masked_mean(surrogate, m), _np_masked_mean(0.5 * (np.log(ratio)) ** 2, m)


def test_ppo_policy_loss_matches_numpy():
  m = _mask()
  logps, old, adv = _normal(6, (3, 7), 0.3, -1.0), _normal(7, (3, 7), 0.3, -1.0), _normal(8, (3, 7))
  loss, metrics = pg.ppo_policy_loss(logps, old, adv, m, clip=0.1)
  want_loss, want_kl = _np_ppo_policy(logps, old, adv, m, 0.1)
  _close(loss, want_loss)
  _close(metrics["approx_kl"], want_kl)
  ratio = np.exp(logps.astype(np.float64) - old)
  binds = ((adv > 0) & (ratio > 1.1)) | ((adv < 0) & (ratio < 0.9))
  _close(metrics["clip_fraction"], _np_masked_mean(binds, m))
  assert 0 < metrics["clip_fraction"] < 1  # the inputs exercise both sides


@jax.jit
def _ppo_grad(log_ratio, advantage):
  """d L / d log pi for one token with log pi_old = 0."""
  loss = lambda lp: pg.ppo_policy_loss(lp, jnp.zeros((1, 1)), jnp.full((1, 1), advantage),
                                       jnp.ones((1, 1)), 0.2)[0]
  return jax.grad(loss)(jnp.full((1, 1), log_ratio))[0, 0]


@hypothesis.given(st.floats(-2.0, 2.0), st.floats(0.05, 3.0))
def test_ppo_objective_is_flat_where_the_clip_binds(log_ratio, advantage_size):
  """d L / d log pi = 0 for A > 0 and rho > 1 + eps, or A < 0 and rho < 1 - eps; else not."""
  clip = 0.2
  ratio = np.exp(log_ratio)
  hypothesis.assume(min(abs(ratio - (1 - clip)), abs(ratio - (1 + clip))) > 1e-3)
  for adv in (advantage_size, -advantage_size):
    grad = float(_ppo_grad(log_ratio, adv))
    binds = (adv > 0 and ratio > 1 + clip) or (adv < 0 and ratio < 1 - clip)
    if binds:
      assert grad == 0.0
    else:
      np.testing.assert_allclose(grad, -adv * ratio, rtol=1e-5)  # d(-A rho)/d log pi


def test_ppo_value_loss_matches_numpy():
  m = _mask()
  v, old, ret = _normal(9, (3, 7)), _normal(10, (3, 7)), _normal(11, (3, 7))
  loss, metrics = pg.ppo_value_loss(v, old, ret, m, clip=0.3)
  v64 = v.astype(np.float64)
  clipped = np.clip(v64, old - 0.3, old + 0.3)
  sq, clipped_sq = (v64 - ret) ** 2, (clipped - ret) ** 2
  _close(loss, 0.5 * _np_masked_mean(np.maximum(sq, clipped_sq), m))
  _close(metrics["value_clip_fraction"], _np_masked_mean(clipped_sq > sq, m))
  assert 0 < metrics["value_clip_fraction"] < 1


@jax.jit
def _value_loss_and_grad(v):
  """The value loss of one token with V_old = 0, R = 10, eps 0.2, and its gradient in V."""
  loss = lambda v: pg.ppo_value_loss(jnp.full((1, 1), v), jnp.zeros((1, 1)),
                                     jnp.full((1, 1), 10.0), jnp.ones((1, 1)), 0.2)[0]
  return jax.value_and_grad(loss)(v)


@hypothesis.given(st.floats(0.01, 5.0))
def test_value_loss_is_flat_beyond_the_clip(beyond):
  """Moving V past V_old + eps towards the return gains nothing: the clipped term holds."""
  loss, grad = _value_loss_and_grad(0.2 + beyond)
  np.testing.assert_allclose(loss, 0.5 * (0.2 - 10.0) ** 2, rtol=1e-6)
  assert float(grad) == 0.0


@pytest.mark.parametrize("kl", [0.0, 5.0, 6.5, 60.0])
def test_adaptive_kl_coef_matches_ziegler(kl):
  error = np.clip(kl / 6.0 - 1.0, -0.2, 0.2)
  _close(pg.adaptive_kl_coef(0.05, kl, 6.0, 256), 0.05 * (1.0 + error * 256 / 10000.0))


def test_group_advantages_match_numpy():
  r = _normal(12, 12, 2.0)
  want = []
  for group in r.astype(np.float64).reshape(3, 4):
    want.extend((group - group.mean()) / (group.std(ddof=1) + 1e-4))
  _close(pg.group_advantages(r, 4), np.array(want))


_group_advantages = jax.jit(pg.group_advantages, static_argnums=1)


@hypothesis.given(hnp.arrays(np.float32, 12, elements=st.floats(-100, 100, width=32)),
                  st.sampled_from([2, 3, 4, 6]))
def test_group_advantages_have_mean_0_per_group(r, group_size):
  adv = np.asarray(_group_advantages(r, group_size)).reshape(-1, group_size)
  np.testing.assert_allclose(adv.mean(1), 0.0, atol=1e-4)
  np.testing.assert_array_equal(_group_advantages(np.full(12, r[0]), group_size), 0.0)


def _np_grpo(logps, old, ref, adv, m, clip, beta):
  logps = np.asarray(logps, np.float64)
  ratio = np.exp(logps - old)
  a = adv[:, None]
  kl = np.exp(ref - logps) - (ref - logps) - 1.0  # k3, Shao et al. 2024 eq. 4
  per_token = -np.minimum(ratio * a, np.clip(ratio, 1 - clip, 1 + clip) * a) + beta * kl
  return np.mean((per_token * m).sum(1) / m.sum(1)), _np_masked_mean(kl, m)


def test_grpo_loss_matches_numpy():
  m = _mask()
  logps, old = _normal(13, (3, 7), 0.3, -1.0), _normal(14, (3, 7), 0.3, -1.0)
  ref, adv = _normal(15, (3, 7), 0.3, -1.0), _normal(16, 3)
  loss, metrics = pg.grpo_loss(logps, old, ref, adv, m, clip=0.15, beta=0.3)
  want_loss, want_kl = _np_grpo(logps, old, ref, adv, m, 0.15, 0.3)
  _close(loss, want_loss)
  _close(metrics["kl"], want_kl)
  ratio = np.exp(logps.astype(np.float64) - old)
  binds = ((adv[:, None] > 0) & (ratio > 1.15)) | ((adv[:, None] < 0) & (ratio < 0.85))
  _close(metrics["clip_fraction"], _np_masked_mean(binds, m))


@hypothesis.given(hnp.arrays(np.float32, (3, 7), elements=st.floats(-8, 0, width=32)),
                  hnp.arrays(np.float32, 3, elements=st.floats(-3, 3, width=32)))
def test_grpo_loss_at_ratio_1_and_the_reference_is_minus_the_mean_advantage(logps, adv):
  loss, metrics = pg.grpo_loss(logps, logps, logps, adv, _mask(), beta=0.5)
  np.testing.assert_allclose(loss, -np.mean(adv.astype(np.float64)), atol=1e-6)
  assert float(metrics["kl"]) == 0.0 and float(metrics["clip_fraction"]) == 0.0


def test_entropy_matches_numpy_and_is_log_v_when_uniform():
  logits = _normal(17, (2, 3, 11), 3.0)
  z = logits.astype(np.float64)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  _close(pg.entropy(logits), -(p * np.log(p)).sum(-1))
  np.testing.assert_allclose(pg.entropy(jnp.zeros((2, 3, 11))), np.log(11), rtol=1e-6)
