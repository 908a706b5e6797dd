import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume
from hypothesis import example
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from research.generate import samplers

V = 16
# XLA on CPU flushes subnormal floats to zero, so 1e-45 and 0 tie there; logits never sit there.
_floats = st.floats(-8, 8, width=32, allow_subnormal=False)
logits_V = hnp.arrays(np.float32, V, elements=_floats)
logits_BxV = hnp.arrays(np.float32, (3, V), elements=_floats)
fast = settings(max_examples=150, deadline=None)
# For the property tests that draw: settings traced, one program per shape and set of filters
# (eager, lax.cond traces its branches again on every call). Eager equals jitted below.
jitted_sample = jax.jit(samplers.sample)


def softmax64(logits):
  z = np.asarray(logits, np.float64)
  p = np.exp(z - z.max(axis=-1, keepdims=True))
  return p / p.sum(axis=-1, keepdims=True)


def kept(masked):
  return np.isfinite(np.asarray(masked))


@given(logits=logits_BxV, seed=st.integers(0, 2**31 - 1))
@fast
def test_top_k_1_equals_greedy_even_with_ties(logits, seed):
  logits = np.round(logits)  # integers, so ties happen
  got = jitted_sample(jax.random.key(seed), logits, temperature=1.5, top_k=1)
  np.testing.assert_array_equal(got, samplers.greedy(logits))
  np.testing.assert_array_equal(got, np.argmax(logits, axis=-1))


@given(logits=logits_BxV, k=st.integers(1, V))
@fast
def test_top_k_keeps_exactly_the_k_largest(logits, k):
  keep = kept(samplers.top_k_mask(logits, k))
  assert (keep.sum(axis=-1) == k).all()
  for row, mask in zip(logits, keep):
    assert row[mask].min() >= row[~mask].max(initial=-np.inf)


def sorted_top_k(logits, k):
  """Reference: a stable sort, the first k in it."""
  keep = np.zeros(logits.shape, bool)
  for row, out in zip(logits.reshape(-1, V), keep.reshape(-1, V)):
    out[np.argsort(-row, kind="stable")[:k]] = True
  return keep


def sorted_top_p(logits, p):
  """Reference: a stable sort by logit (the order of the exact probabilities, which float64
  can round into ties: logits 0 and -3e-29 give one probability), kept while the mass before
  is < p."""
  keep = np.zeros(logits.shape, bool)
  for row, out in zip(logits.reshape(-1, V), keep.reshape(-1, V)):
    probs = softmax64(row)
    order = np.argsort(-row, kind="stable")
    before = np.cumsum(probs[order]) - probs[order]
    out[order[(before < p) | (np.arange(V) == 0)]] = True
  return keep


tied_logits = hnp.arrays(np.float32, (2, V), elements=st.sampled_from(
    [-np.inf, -2.0, -1.0, -0.0, 0.0, 0.5, 1.0, 3.0]))


@given(logits=tied_logits, k=st.integers(1, V + 2))
@fast
def test_top_k_selects_what_a_stable_sort_selects_even_with_ties_and_inf(logits, k):
  np.testing.assert_array_equal(kept(samplers.top_k_mask(logits, k)) | np.isinf(logits),
                                sorted_top_k(logits, k) | np.isinf(logits))


_NEAR_TIE = np.full((2, V), -3.423571e-29, np.float32)
_NEAR_TIE[0, 1] = 0.0  # one probability in float64, yet token 1 is the likelier


@given(logits=st.one_of(tied_logits, logits_BxV.map(lambda x: x[:2])), p=st.floats(0.01, 1.0))
@example(logits=_NEAR_TIE, p=1 / 32)
@fast
def test_top_p_selects_what_a_stable_sort_selects_even_with_ties(logits, p):
  for row in logits:
    assume(np.isfinite(row).any())
    assume(np.abs(np.cumsum(np.sort(softmax64(row))[::-1]) - p).min() > 1e-5)
  want = sorted_top_p(logits, p) & np.isfinite(logits)
  np.testing.assert_array_equal(kept(samplers.top_p_mask(logits, p)), want)


def test_temperature_towards_zero_equals_greedy():
  rng = np.random.default_rng(0)
  logits = rng.permutation(np.arange(V, dtype=np.float32) * 0.05)[None].repeat(64, 0)  # gaps 0.05
  keys = jax.random.split(jax.random.key(0), 20)
  want = np.argmax(logits, axis=-1)
  for t in (1e-3, 1e-4):
    for key in keys:
      np.testing.assert_array_equal(samplers.sample(key, logits, temperature=t), want)
  tied = np.zeros((4, V), np.float32)  # exactly 0 is greedy, ties included
  np.testing.assert_array_equal(samplers.sample(keys[0], tied, temperature=0.0), [0] * 4)
  assert len(set(np.asarray(samplers.sample(keys[0], logits, temperature=1.0)))) > 1


@given(logits=logits_V, p=st.floats(0.01, 1.0))
@fast
def test_top_p_keeps_the_smallest_likeliest_set_reaching_p(logits, p):
  keep = kept(samplers.top_p_mask(logits, p))
  probs = softmax64(logits)
  mass, m = np.sort(probs)[::-1], keep.sum()
  assume(np.abs(np.cumsum(mass) - p).min() > 1e-5)  # float32 cannot settle ties with p itself
  # The likeliest tokens, up to float32 resolution of the probabilities the sampler compares.
  assert probs[keep].min() >= probs[~keep].max(initial=0.0) - 1e-7
  assert mass[:m].sum() >= p                                 # reaching p
  assert mass[:m - 1].sum() < p                              # and no smaller set does


@given(logits=logits_V, min_p=st.floats(0.0, 1.0))
@fast
def test_min_p_drops_exactly_the_tokens_below_min_p_times_p_max(logits, min_p):
  probs = softmax64(logits)
  assume(np.abs(probs / probs.max() - min_p).min() > 1e-5)
  np.testing.assert_array_equal(kept(samplers.min_p_mask(logits, min_p)),
                                probs >= min_p * probs.max())


def reference_filter(logits, temperature, top_k, top_p, min_p):
  """The filters written out in NumPy float64, one after the other."""
  z = np.asarray(logits, np.float64) / temperature
  order = np.argsort(-z, kind="stable")
  z[order[top_k:]] = -np.inf
  probs = softmax64(z)
  order = np.argsort(-probs, kind="stable")
  before = np.cumsum(probs[order]) - probs[order]
  z[order[before >= top_p]] = -np.inf
  probs = softmax64(z)
  z[probs < min_p * probs.max()] = -np.inf
  return softmax64(z)


@pytest.mark.parametrize("temperature, top_k, top_p, min_p", [
    (1.0, None, None, None), (0.7, 6, None, None), (1.3, None, 0.8, None),
    (1.0, None, None, 0.2), (0.9, 7, 0.9, 0.05)])
def test_sampling_frequencies_match_the_filtered_softmax(temperature, top_k, top_p, min_p):
  logits = np.linspace(2.0, -2.0, 10).astype(np.float32)[np.random.default_rng(1).permutation(10)]
  want = reference_filter(logits, temperature, top_k or 10, top_p or 1.0, min_p or 0.0)
  n = 40_000
  draws = samplers.sample(jax.random.key(42), np.broadcast_to(logits, (n, 10)), temperature,
                          top_k, top_p, min_p)
  counts = np.bincount(np.asarray(draws), minlength=10)
  assert counts[want == 0].sum() == 0  # a dropped token is never drawn
  support = want > 0
  chi2 = (((counts - n * want)[support]) ** 2 / (n * want[support])).sum()
  # Fixed seed; a correct sampler fails this with probability 1e-4.
  assert stats.chi2.sf(chi2, df=support.sum() - 1) > 1e-4, (counts, n * want)
  np.testing.assert_array_equal(
      samplers.candidate_set(logits, temperature, top_k, top_p, min_p),
      np.flatnonzero(support)[np.argsort(-want[support], kind="stable")])


def test_samplers_jit_with_traced_thresholds_and_any_leading_shape():
  logits = jax.random.normal(jax.random.key(0), (2, 3, 50))
  key = jax.random.key(1)
  args = (0.8, 10, 0.9, 0.05)
  eager = samplers.sample(key, logits, *args)
  jitted = jax.jit(samplers.sample)(key, logits, *args)
  assert eager.shape == (2, 3)
  np.testing.assert_array_equal(eager, jitted)
  greedy = jax.jit(samplers.sample)(key, logits, 0.0, 10, 0.9, 0.05)
  np.testing.assert_array_equal(greedy, jnp.argmax(logits, -1))
  # The settings that keep everything (k = V, p = 1) skip their filter: the draw is the plain
  # categorical's, traced or not.
  plain = jax.random.categorical(key, logits / 0.8, axis=-1)
  np.testing.assert_array_equal(jax.jit(samplers.sample)(key, logits, 0.8, 50, 1.0, 0.0), plain)
  np.testing.assert_array_equal(samplers.sample(key, logits, 0.8, 50, 1.0, 0.0), plain)



def test_higher_temperature_flattens_the_distribution():
  logits = jnp.array([3.0, 1.0, 0.5, -1.0])
  entropy = [float(-(jax.nn.softmax(samplers.apply_temperature(logits, t)) *
                     jax.nn.log_softmax(samplers.apply_temperature(logits, t))).sum())
             for t in (0.5, 1.0, 2.0)]
  assert entropy[0] < entropy[1] < entropy[2]


def test_candidate_sets_and_bad_thresholds():
  logits = np.array([0.0, 3.0, 2.0, 1.0], np.float32)
  np.testing.assert_array_equal(samplers.candidate_set(logits, top_k=2), [1, 2])
  np.testing.assert_array_equal(samplers.candidate_set(logits, temperature=0.0), [1])
  np.testing.assert_array_equal(samplers.candidate_set(logits), [1, 2, 3, 0])
  with pytest.raises(ValueError, match="k=0"):
    samplers.top_k_mask(logits, 0)
  with pytest.raises(ValueError, match="p=1.5"):
    samplers.top_p_mask(logits, 1.5)
  with pytest.raises(ValueError, match=r"shape \[V\]"):
    samplers.candidate_set(logits[None])


# -- the grammar's mask: an additive step before every filter -----------------------------

@given(logits=logits_BxV, allowed=hnp.arrays(bool, (3, V)), seed=st.integers(0, 2**31 - 1),
       temperature=st.sampled_from([0.0, 0.7, 1.5]), top_k=st.sampled_from([None, 1, 5]),
       top_p=st.sampled_from([None, 0.5, 1.0]))
@settings(max_examples=40, deadline=None)
def test_a_disallowed_token_is_never_drawn(logits, allowed, seed, temperature, top_k, top_p):
  assume(allowed.any(axis=-1).all())
  got = np.asarray(jitted_sample(jax.random.key(seed), logits, temperature, top_k, top_p,
                                 allowed=allowed))
  assert allowed[np.arange(3), got].all()
  if temperature == 0.0:  # greedy among the allowed: the reference argmax over them
    np.testing.assert_array_equal(got, np.argmax(np.where(allowed, logits, -np.inf), -1))


@pytest.mark.parametrize("temperature, top_k, top_p, min_p", [
    (0.0, None, None, None), (1.0, None, None, None), (0.8, 10, 0.9, 0.05)])
def test_all_allowed_equals_the_unmasked_sampler_bit_for_bit(temperature, top_k, top_p, min_p):
  logits = jax.random.normal(jax.random.key(0), (3, V)) * 3  # the shapes compiled above
  everything = np.ones((3, V), bool)
  for seed in range(3):
    key = jax.random.key(seed)
    np.testing.assert_array_equal(
        samplers.sample(key, logits, temperature, top_k, top_p, min_p, allowed=everything),
        samplers.sample(key, logits, temperature, top_k, top_p, min_p))
