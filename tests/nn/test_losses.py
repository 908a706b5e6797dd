"""The loss module against NumPy float64 transcriptions of the published formulas (written here,
independent of research/nn/losses.py), TRL's implementations where TRL is installed, and one law
per objective.

Float32 against float64: rtol 1e-5, atol 1e-6 (rewards are beta times differences of log-probs
near -20, which float32 rounds in absolute terms)."""

import collections
import math
import os
import types

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest

from research.nn import losses

RTOL, ATOL = 1e-5, 1e-6


def test_cross_entropy_of_uniform_logits_is_log_v():
  logits = jnp.zeros((2, 3, 17))
  targets = jnp.zeros((2, 3), jnp.int32)
  np.testing.assert_allclose(losses.cross_entropy(logits, targets), np.log(17), rtol=1e-6)
  weights = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  np.testing.assert_allclose(losses.cross_entropy(logits, targets, weights), np.log(17),
                             rtol=1e-6)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)  # log 1 / (1 + e^-x)


def _np_preference(kind, c, r, rc, rr, beta, ls=0.0, gamma=0.5):
  """The papers' formulas, float64: per-row loss and the implicit rewards."""
  c, r = np.asarray(c, np.float64), np.asarray(r, np.float64)
  if kind in ("orpo", "simpo"):
    chosen_reward, rejected_reward = beta * c, beta * r
  else:
    rc, rr = np.asarray(rc, np.float64), np.asarray(rr, np.float64)
    z = (c - rc) - (r - rr)  # log pi/pi_ref (y_w) - log pi/pi_ref (y_l)
    chosen_reward, rejected_reward = beta * (c - rc), beta * (r - rr)
  if kind == "sigmoid":  # Rafailov et al. 2023 eq. 7; conservative DPO (Mitchell 2023)
    loss = -(1 - ls) * _log_sigmoid(beta * z) - ls * _log_sigmoid(-beta * z)
  elif kind == "hinge":  # Zhao et al. 2023 (SLiC-HF)
    loss = np.maximum(0.0, 1.0 - beta * z)
  elif kind == "ipo":  # Azar et al. 2023 eq. 17, tau = beta
    loss = (z - 1.0 / (2.0 * beta)) ** 2
  elif kind == "orpo":  # Hong et al. 2024 eqs. 4-7 on mean per-token log p
    odds = lambda lp: np.exp(lp) / (1.0 - np.exp(lp))  # p / (1 - p)
    loss = -c - beta * _log_sigmoid(np.log(odds(c) / odds(r)))
  else:  # Meng et al. 2024 eq. 6 on mean per-token log p
    loss = -_log_sigmoid(beta * (c - r) - gamma)
  metrics = {"rewards/chosen": chosen_reward.mean(), "rewards/rejected": rejected_reward.mean(),
             "rewards/margins": (chosen_reward - rejected_reward).mean(),
             "rewards/accuracies": (chosen_reward > rejected_reward).mean()}
  return loss, metrics


def _sums(seed, n=6):
  """Summed answer log-probs, near -20, as a policy and a reference give them."""
  rng = np.random.default_rng(seed)
  return [(-20.0 + 5.0 * rng.standard_normal(n)).astype(np.float32) for _ in range(4)]


def _means(seed, n=6):
  """Mean per-token log-probs in (-3, -0.05) (probabilities below 1, odds finite)."""
  rng = np.random.default_rng(seed)
  return [rng.uniform(-3.0, -0.05, n).astype(np.float32) for _ in range(2)]


def _check(kind, inputs, beta, **kw):
  got_loss, got_metrics = losses.preference_loss(kind, *inputs, beta, **kw)
  want_loss, want_metrics = _np_preference(kind, *inputs, beta,
                                           kw.get("label_smoothing", 0.0),
                                           kw.get("simpo_gamma", 0.5))
  assert got_loss.shape == (len(inputs[0]),)  # per row: the caller averages
  np.testing.assert_allclose(np.asarray(got_loss, np.float64), want_loss, rtol=RTOL, atol=ATOL)
  for name, want in want_metrics.items():
    np.testing.assert_allclose(float(got_metrics[name]), want, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("beta", [0.1, 0.5])
@pytest.mark.parametrize("kind,kw", [("sigmoid", {}), ("sigmoid", {"label_smoothing": 0.2}),
                                     ("hinge", {}), ("ipo", {})])
def test_reference_losses_match_numpy(kind, kw, beta):
  _check(kind, _sums(0), beta, **kw)


@pytest.mark.parametrize("beta", [0.1, 2.0])
@pytest.mark.parametrize("kind,kw", [("orpo", {}), ("simpo", {}), ("simpo", {"simpo_gamma": 1.3})])
def test_reference_free_losses_match_numpy(kind, kw, beta):
  c, r = _means(1)
  _check(kind, (c, r, None, None), beta, **kw)


def test_hinge_and_ipo_inputs_cover_both_branches():
  """The fixed inputs put some rows on each side of the hinge, so a missing relu would fail."""
  c, r, rc, rr = (x.astype(np.float64) for x in _sums(0))
  z = (c - rc) - (r - rr)
  assert (0.1 * z > 1).any() and (0.1 * z < 1).any()


@hypothesis.given(hnp.arrays(np.float32, st.integers(1, 8), elements=st.floats(-60, -0.0625,
                                                                                width=32)),
                  hnp.arrays(np.float32, 8, elements=st.floats(-60, -0.0625, width=32)),
                  st.floats(0.01, 5.0), st.floats(0.0, 0.5))
def test_at_policy_equal_reference_the_losses_take_their_value_at_zero(c, r, beta, ls):
  """z = 0 for any batch: sigmoid gives ln 2 (with any smoothing), hinge 1, ipo 1/(4 beta^2)."""
  r = r[:len(c)]
  for kind, want in (("sigmoid", math.log(2)), ("hinge", 1.0), ("ipo", 1 / (4 * beta ** 2))):
    loss, metrics = losses.preference_loss(kind, c, r, c, r, beta, label_smoothing=ls)
    np.testing.assert_allclose(loss, np.full(len(c), want), rtol=1e-6, err_msg=kind)
    assert float(metrics["rewards/margins"]) == 0.0
    assert float(metrics["rewards/accuracies"]) == 0.0


@hypothesis.given(hnp.arrays(np.float32, 4, elements=st.floats(-5, -0.0625, width=32)),
                  st.floats(0.0, 3.0))
def test_orpo_of_equal_answers_is_the_nll_plus_beta_ln2(c, beta):
  loss, _ = losses.preference_loss("orpo", c, c, None, None, beta)  # log odds ratio 0
  np.testing.assert_allclose(loss, -c.astype(np.float64) + beta * math.log(2), rtol=1e-5,
                             atol=1e-6)


def test_simpo_margin_gamma_shifts_the_decision_point():
  """-log sigmoid(beta (c - r) - gamma) is ln 2 exactly where c - r = gamma / beta."""
  c = np.array([-1.0, -2.0], np.float32)
  loss, _ = losses.preference_loss("simpo", c + 0.25, c, None, None, 2.0, simpo_gamma=0.5)
  np.testing.assert_allclose(loss, [math.log(2)] * 2, rtol=1e-6)


def test_an_unknown_kind_names_the_config_field():
  with pytest.raises(ValueError, match="config field pref_loss: 'kto' is not one of sigmoid"):
    losses.preference_loss("kto", *_sums(0), 0.1)


def test_pairwise_reward_loss_matches_numpy_and_is_ln2_at_a_tie():
  rng = np.random.default_rng(3)
  rc, rr = (rng.standard_normal(7).astype(np.float32) * 3 for _ in range(2))
  loss, metrics = losses.pairwise_reward_loss(rc, rr)
  want = -np.mean(_log_sigmoid(rc.astype(np.float64) - rr))  # Ouyang et al. 2022 eq. 1
  np.testing.assert_allclose(float(loss), want, rtol=RTOL)
  np.testing.assert_allclose(float(metrics["accuracy"]), np.mean(rc > rr))
  assert 0 < float(metrics["accuracy"]) < 1
  tie, _ = losses.pairwise_reward_loss(rc, rc)
  np.testing.assert_allclose(float(tie), math.log(2), rtol=1e-6)


# TRL's implementations, called with a namespace standing in for the trainer.


@pytest.fixture(scope="module")
def trl_losses():
  os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # cpo and orpo live in experimental
  pytest.importorskip("trl")
  import torch  # pylint: disable=g-import-not-at-top
  from trl.experimental.cpo import CPOTrainer  # pylint: disable=g-import-not-at-top
  from trl.experimental.orpo import ORPOTrainer  # pylint: disable=g-import-not-at-top
  from trl.trainer.dpo_trainer import DPOTrainer  # pylint: disable=g-import-not-at-top
  return types.SimpleNamespace(torch=torch, dpo=DPOTrainer, cpo=CPOTrainer, orpo=ORPOTrainer)


def _accelerator():
  return types.SimpleNamespace(device="cpu", gather=lambda x: x, gather_for_metrics=lambda x: x)


def _trl_dpo(trl, kind, beta, counts, c, r, rc, rr):
  """DPOTrainer's loss and metrics from per-token log-probs whose row sums are c and r."""
  torch = trl.torch
  n, length = len(c), max(counts) + 1
  mask = np.zeros((2 * n, length + 1), np.int64)  # column 0 is the prompt
  per_token = np.zeros((2 * n, length), np.float32)
  for i, (sums, count) in enumerate(zip(np.concatenate([c, r]), counts + counts)):
    mask[i, 1:count + 1] = 1
    per_token[i, :count] = sums / count
  outputs = types.SimpleNamespace(log_probs=torch.tensor(per_token),
                                  entropy=torch.zeros(2 * n, length),
                                  mean_logits=torch.zeros(2 * n, length),
                                  is_top1=torch.zeros(2 * n, length, dtype=torch.bool))
  trainer = types.SimpleNamespace(
      model=types.SimpleNamespace(training=True), accelerator=_accelerator(),
      aux_loss_enabled=False, ld_alpha=None, precompute_ref_logps=True,
      f_divergence_type="reverse_kl", loss_types=[kind], loss_weights=[1.0], beta=beta,
      label_smoothing=0.0, use_weighting=False, _total_train_tokens=0, _tp_size=1,
      _metrics=collections.defaultdict(lambda: collections.defaultdict(list)))
  inputs = {"input_ids": torch.zeros(2 * n, length + 1, dtype=torch.long),
            "attention_mask": torch.ones(2 * n, length + 1, dtype=torch.long),
            "completion_mask": torch.tensor(mask),
            "ref_chosen_logps": torch.tensor(rc), "ref_rejected_logps": torch.tensor(rr)}
  # pylint: disable=protected-access
  loss = trl.dpo._compute_loss(trainer, lambda **_: outputs, inputs, False)
  return float(loss), {k: v[0] for k, v in trainer._metrics["train"].items()}


@pytest.mark.parametrize("kind", ["sigmoid", "hinge", "ipo"])
def test_dpo_losses_match_trl(trl_losses, kind):
  counts = [3, 5, 2, 4, 6, 1]
  c, r, rc, rr = _sums(4)
  beta = 0.2
  trl_loss, trl_metrics = _trl_dpo(trl_losses, kind, beta, counts, c, r, rc, rr)
  if kind == "ipo":  # IPO compares per-token averages: TRL divides inside, our caller before
    n = np.asarray(counts + counts, np.float32)
    c, r, rc, rr = c / n[:6], r / n[6:], rc / n[:6], rr / n[6:]
  loss, metrics = losses.preference_loss(kind, c, r, rc, rr, beta)
  np.testing.assert_allclose(float(jnp.mean(loss)), trl_loss, rtol=RTOL, atol=ATOL)
  if kind != "ipo":  # TRL's rewards are on the summed log-ratios whatever the loss
    for name in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
      np.testing.assert_allclose(float(metrics[name]), trl_metrics[name], rtol=RTOL, atol=ATOL,
                                 err_msg=name)


@pytest.mark.parametrize("kind,ls", [("sigmoid", 0.15), ("simpo", 0.0)])
def test_smoothed_dpo_and_simpo_match_trl_cpo(trl_losses, kind, ls):
  """CPOTrainer's loss on log-ratios is cDPO; on mean log-probs with simpo it is SimPO."""
  torch, beta, gamma = trl_losses.torch, 0.3, 0.7
  if kind == "sigmoid":
    c, r, rc, rr = _sums(5)
    trl_c, trl_r = c - rc, r - rr
  else:
    (c, r), rc, rr = _means(6), None, None
    trl_c, trl_r = c, r
  trainer = types.SimpleNamespace(alpha=0.0, beta=beta, label_smoothing=ls, loss_type=kind,
                                  simpo_gamma=gamma, accelerator=_accelerator())
  want, _, _ = trl_losses.cpo.cpo_loss(trainer, torch.tensor(trl_c), torch.tensor(trl_r))
  got, _ = losses.preference_loss(kind, c, r, rc, rr, beta, label_smoothing=ls,
                                  simpo_gamma=gamma)
  np.testing.assert_allclose(got, want.numpy(), rtol=RTOL, atol=ATOL)


def test_orpo_matches_trl(trl_losses):
  """TRL returns beta log sigmoid(log odds ratio); ORPO adds it to the chosen answer's NLL."""
  torch, beta = trl_losses.torch, 0.25
  c, r = _means(7)
  trainer = types.SimpleNamespace(beta=beta, accelerator=_accelerator())
  ratio_term, chosen_rewards, _, _, _ = trl_losses.orpo.odds_ratio_loss(
      trainer, torch.tensor(c), torch.tensor(r))
  got, metrics = losses.preference_loss("orpo", c, r, None, None, beta)
  np.testing.assert_allclose(got, -c - ratio_term.numpy(), rtol=RTOL, atol=ATOL)
  np.testing.assert_allclose(float(metrics["rewards/chosen"]), chosen_rewards.mean().item(),
                             rtol=RTOL)
