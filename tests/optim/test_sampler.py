"""The SGD minibatch sampler: without replacement in an epoch, seeded, resumable."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from research.optim import MinibatchSampler


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 200), m=st.integers(1, 200), seed=st.integers(0, 2**31),
       epoch=st.integers(0, 5))
def test_an_epoch_draws_m_of_n_without_replacement(n, m, seed, epoch):
  if m > n:
    with pytest.raises(ValueError, match="batch_size"):
      MinibatchSampler(n, m, seed)
    return
  sampler = MinibatchSampler(n, m, seed)
  batches = [sampler.indices(epoch, s) for s in range(sampler.steps_per_epoch)]
  assert all(len(b) == m for b in batches)
  seen = np.concatenate(batches)
  assert len(np.unique(seen)) == len(seen) == (n // m) * m  # no sample twice in an epoch
  assert seen.min() >= 0 and seen.max() < n
  assert np.array_equal(seen, MinibatchSampler(n, m, seed).permutation(epoch)[:len(seen)])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 60), m=st.integers(1, 20), seed=st.integers(0, 1000),
       skip=st.integers(0, 50))
def test_resuming_from_epoch_and_step_continues_the_same_stream(n, m, seed, skip):
  m = min(m, n)
  sampler = MinibatchSampler(n, m, seed)
  full = list(sampler.batches(num_steps=skip + 7))
  epoch, step, _ = full[skip]
  resumed = list(MinibatchSampler(n, m, seed).batches(start=(epoch, step), num_steps=7))
  assert [(e, s) for e, s, _ in resumed] == [(e, s) for e, s, _ in full[skip:]]
  for (_, _, a), (_, _, b) in zip(resumed, full[skip:]):
    assert np.array_equal(a, b)


def test_epochs_reshuffle_and_seeds_differ():
  sampler = MinibatchSampler(1000, 100, seed=3)
  assert not np.array_equal(sampler.permutation(0), sampler.permutation(1))
  assert not np.array_equal(sampler.permutation(0), MinibatchSampler(1000, 100, 4).permutation(0))
  steps = list(itertools.islice(sampler.batches(), 12))
  assert [(e, s) for e, s, _ in steps][9:] == [(0, 9), (1, 0), (1, 1)]
  with pytest.raises(ValueError, match="step=10"):
    sampler.indices(0, 10)
