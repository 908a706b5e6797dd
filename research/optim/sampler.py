"""Minibatches for SGD: each epoch a seeded permutation, m of n samples per step, no repeats.

The position (epoch, step) is all the state there is, so a run resumes exactly where it stopped:

  sampler = MinibatchSampler(num_samples=n, batch_size=m, seed=0)
  for epoch, step, idx_M in sampler.batches(start=(epoch, step), num_steps=1000):
    loss = train_step(x[idx_M], y[idx_M])
"""

import dataclasses
from typing import Iterator

import numpy as np


@dataclasses.dataclass(frozen=True)
class MinibatchSampler:
  num_samples: int  # n
  batch_size: int  # m
  seed: int = 0

  def __post_init__(self):
    if not 0 < self.batch_size <= self.num_samples:
      raise ValueError(f"MinibatchSampler: batch_size={self.batch_size} must be in "
                       f"1..num_samples={self.num_samples}.")

  @property
  def steps_per_epoch(self) -> int:
    # The last n mod m samples of a permutation wait for a later epoch: every step sees m.
    return self.num_samples // self.batch_size

  def permutation(self, epoch: int) -> np.ndarray:
    """The epoch's order of the n samples; a function of (seed, epoch) only."""
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

  def indices(self, epoch: int, step: int) -> np.ndarray:
    """The m sample indices of step `step` of epoch `epoch`."""
    if not 0 <= step < self.steps_per_epoch:
      raise ValueError(f"MinibatchSampler: step={step} outside 0..{self.steps_per_epoch - 1}.")
    return self.permutation(epoch)[step * self.batch_size:(step + 1) * self.batch_size]

  def batches(self, start: tuple[int, int] = (0, 0), num_steps: int | None = None
              ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yields (epoch, step, idx_M) from position `start` on, num_steps times (or forever)."""
    epoch, step = start
    order, order_epoch = None, None
    taken = 0
    while num_steps is None or taken < num_steps:
      if order_epoch != epoch:
        order, order_epoch = self.permutation(epoch), epoch
      yield epoch, step, order[step * self.batch_size:(step + 1) * self.batch_size]
      taken += 1
      step += 1
      if step == self.steps_per_epoch:
        epoch, step = epoch + 1, 0
