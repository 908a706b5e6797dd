"""Sliding windows over a token array, as the notebook draws them.

A window starting at i has inputs tokens[i : i+L] and targets tokens[i+1 : i+L+1]: the target
at position t is the token after input t. Windows start every `stride` tokens (stride = L: no
overlap; stride = 1: every offset), so a stream of N tokens has floor((N - L - 1) / stride) + 1
of them. An epoch visits each window once, in an order fixed by (seed, epoch), in batches of
`batch_size`; the last incomplete batch is dropped, so every batch has the same shape.

Iteration is a pure function of the step: batch(step) works out its epoch and position, so a
run resumed at step k gets exactly the batch the uninterrupted run would have had.
"""

import numpy as np
from grain import experimental as grain_experimental


def num_windows(num_tokens: int, context_length: int, stride: int) -> int:
  """floor((N - L - 1) / stride) + 1 windows fit in N tokens (0 when N < L + 1)."""
  if num_tokens < context_length + 1:
    return 0
  return (num_tokens - context_length - 1) // stride + 1


class Windows:
  """Batches of (inputs_BxL, targets_BxL) int32 arrays from a 1-D token array or memmap.

  With several hosts, each builds Windows with its shard_index (jax.process_index()) and
  shard_count (jax.process_count()) and gets its batch_size / shard_count rows of the global
  batch; all shards together are exactly the one-host batch.
  """

  def __init__(self, tokens, context_length: int, stride: int, batch_size: int,
               seed: int = 0, shuffle: bool = True, shard_index: int = 0, shard_count: int = 1):
    for name, value in (("context_length", context_length), ("stride", stride),
                        ("batch_size", batch_size)):
      if int(value) < 1:
        raise ValueError(f"Windows: {name}={value}; expected a positive integer.")
    if batch_size % shard_count or not 0 <= shard_index < shard_count:
      raise ValueError(f"Windows: shard {shard_index} of {shard_count} with batch_size "
                       f"{batch_size}; expected 0 <= shard_index < shard_count dividing it.")
    if not 0 <= seed < 2**32:
      raise ValueError(f"Windows: seed={seed}; expected an integer in [0, 2**32).")
    self.tokens = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
    if self.tokens.ndim != 1:
      raise ValueError(f"Windows: tokens have shape {self.tokens.shape}; expected a 1-D array.")
    self.context_length = int(context_length)
    self.stride = int(stride)
    self.batch_size = int(batch_size)
    self.seed = int(seed)
    self.shuffle = shuffle
    self.shard_index, self.shard_count = int(shard_index), int(shard_count)
    self._rows = slice(self.shard_index * self.batch_size // self.shard_count,
                       (self.shard_index + 1) * self.batch_size // self.shard_count)
    self.num_windows = num_windows(len(self.tokens), self.context_length, self.stride)
    self.batches_per_epoch = self.num_windows // self.batch_size
    if self.batches_per_epoch == 0:
      raise ValueError(
          f"Windows: {len(self.tokens)} tokens give {self.num_windows} windows of "
          f"{self.context_length}+1 tokens at stride {self.stride}, fewer than one batch of "
          f"{self.batch_size}; use more text or a smaller context_length/batch_size.")
    self._offsets_W = np.arange(self.context_length + 1)  # W = L + 1: inputs, then last target
    self._epoch_seed = (None, None)

  def epoch(self, step: int) -> int:
    return int(step) // self.batches_per_epoch

  def window_ids(self, step: int) -> np.ndarray:
    """Which windows (0 .. num_windows-1) make up batch `step` (this shard's rows of it)."""
    if step < 0:
      raise ValueError(f"Windows: step={step}; expected step >= 0.")
    epoch, position = divmod(int(step), self.batches_per_epoch)
    first = position * self.batch_size
    slots = range(first + self._rows.start, first + self._rows.stop)
    if not self.shuffle:
      return np.asarray(slots, dtype=np.int64)
    # grain's index_shuffle is a keyed bijection on [0, n): window j of the epoch is computed
    # on its own, in O(1) memory, where np.random.permutation would hold n int64s (8 GB for a
    # billion stride-1 windows) and redraw them after every restart.
    seed = self._seed_of(epoch)
    return np.asarray([grain_experimental.index_shuffle(
        j, max_index=self.num_windows - 1, seed=seed, rounds=4) for j in slots], dtype=np.int64)

  def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """The batch at `step`: (inputs_BxL, targets_BxL), int32, targets = inputs shifted by one."""
    return self._gather(self.window_ids(step) * self.stride)

  def random_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """nanoGPT's sampler: batch_size windows at uniform offsets in [0, N - L - 1], seeded by
    (seed, step); ignores stride and epochs."""
    rng = np.random.default_rng((self.seed, int(step)))
    starts_B = rng.integers(0, len(self.tokens) - self.context_length, size=self.batch_size)
    return self._gather(starts_B[self._rows])

  def iterate(self, start_step: int = 0, num_steps: int | None = None):
    """Yields batch(start_step), batch(start_step + 1), ... (forever when num_steps is None)."""
    step = start_step
    while num_steps is None or step < start_step + num_steps:
      yield self.batch(step)
      step += 1

  def _gather(self, starts_B):
    chunk_BxW = np.asarray(self.tokens[starts_B[:, None] + self._offsets_W[None, :]],
                           dtype=np.int32)
    return chunk_BxW[:, :-1], chunk_BxW[:, 1:]

  def _seed_of(self, epoch: int) -> int:
    if self._epoch_seed[0] != epoch:
      state = np.random.SeedSequence((self.seed, epoch)).generate_state(1, np.uint32)
      self._epoch_seed = (epoch, int(state[0]))
    return self._epoch_seed[1]
