import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from research.data import tokens
from research.data import windows


@given(n=st.integers(0, 300), length=st.integers(1, 40), stride=st.integers(1, 50))
@settings(max_examples=300, deadline=None)
def test_window_count_matches_the_notebook_loop(n, length, stride):
  # The notebook's loop: for i in range(0, len(ids) - L, stride): ids[i:i+L], ids[i+1:i+L+1]
  loop = [i for i in range(0, n - length, stride) if i + length + 1 <= n]
  assert len(loop) == len(range(0, n - length, stride))
  assert windows.num_windows(n, length, stride) == len(loop)


@pytest.mark.parametrize("length, stride", [(8, 8), (8, 3), (5, 1), (4, 9)])
def test_targets_are_inputs_shifted_by_one_at_stride_starts(length, stride):
  ids = np.arange(1000) * 7 % 1009  # distinct values, so a window reveals where it starts
  w = windows.Windows(ids, length, stride, batch_size=4, seed=1)
  for step in range(2 * w.batches_per_epoch + 1):
    inputs, targets = w.batch(step)
    assert inputs.shape == targets.shape == (4, length)
    assert inputs.dtype == targets.dtype == np.int32
    for x, y in zip(inputs, targets):
      start = int(np.flatnonzero(ids == x[0])[0])
      assert start % stride == 0
      np.testing.assert_array_equal(x, ids[start:start + length])
      np.testing.assert_array_equal(y, ids[start + 1:start + length + 1])


def test_an_epoch_visits_every_window_once_in_a_new_order_each_epoch():
  w = windows.Windows(np.arange(161), context_length=8, stride=4, batch_size=6, seed=3)
  assert w.num_windows == 39 and w.batches_per_epoch == 6
  epoch0 = np.concatenate([w.window_ids(s) for s in range(6)])
  epoch1 = np.concatenate([w.window_ids(s) for s in range(6, 12)])
  assert len(set(epoch0)) == len(set(epoch1)) == 36
  assert set(epoch0) <= set(range(39)) and not np.array_equal(epoch0, epoch1)
  w_full = windows.Windows(np.arange(41 * 4 + 9), 8, 4, batch_size=6, seed=3)  # 42 windows
  ids = np.concatenate([w_full.window_ids(s) for s in range(7)])
  np.testing.assert_array_equal(np.sort(ids), np.arange(42))
  ordered = windows.Windows(np.arange(161), 8, 4, batch_size=6, shuffle=False)
  np.testing.assert_array_equal(ordered.window_ids(7), np.arange(6, 12))


def test_batches_are_deterministic_and_seed_dependent():
  ids = np.random.default_rng(0).integers(0, 500, size=5000)
  a, b = windows.Windows(ids, 16, 5, 8, seed=7), windows.Windows(ids, 16, 5, 8, seed=7)
  other = windows.Windows(ids, 16, 5, 8, seed=8)
  for step in (0, 3, 61, 500):
    np.testing.assert_array_equal(a.batch(step)[0], b.batch(step)[0])
    np.testing.assert_array_equal(a.random_batch(step)[1], b.random_batch(step)[1])
  assert not np.array_equal(a.batch(3)[0], other.batch(3)[0])


def test_a_restarted_iterator_continues_exactly_where_the_run_stopped():
  ids = np.random.default_rng(1).integers(0, 300, size=3000)
  uninterrupted = list(windows.Windows(ids, 12, 30, 10, seed=5).iterate(0, 100))
  # "Crash" at step 37, in the fourth epoch (10 batches each); a fresh object resumes there.
  resumed = windows.Windows(ids, 12, 30, 10, seed=5)
  assert resumed.batches_per_epoch == 10
  for k, (x, y) in enumerate(resumed.iterate(37, 63), start=37):
    np.testing.assert_array_equal(x, uninterrupted[k][0])
    np.testing.assert_array_equal(y, uninterrupted[k][1])


@pytest.mark.parametrize("high", [60_000, 1_000_000])
def test_memmapped_uint16_and_uint32_tokens_give_the_in_memory_batches(tmp_path, high):
  ids = np.random.default_rng(2).integers(0, high, size=20_000)
  mapped = tokens.open_tokens(tokens.write_tokens(tmp_path / "t.bin", ids))
  assert mapped.dtype == (np.uint16 if high < 2**16 else np.uint32)
  in_memory = windows.Windows(ids, 32, 16, 8, seed=0)
  on_disk = windows.Windows(mapped, 32, 16, 8, seed=0)
  for step in (0, 77, 300):
    for got, want in zip(on_disk.batch(step), in_memory.batch(step)):
      assert got.dtype == np.int32
      np.testing.assert_array_equal(got, want)
  assert int(on_disk.batch(1)[0].max()) > 2**16 or high < 2**16


def test_shards_of_a_batch_make_up_the_one_host_batch():
  ids = np.random.default_rng(4).integers(0, 1000, size=4000)
  whole = windows.Windows(ids, 16, 3, 12, seed=2)
  shards = [windows.Windows(ids, 16, 3, 12, seed=2, shard_index=i, shard_count=4)
            for i in range(4)]
  assert shards[0].batches_per_epoch == whole.batches_per_epoch
  for step in (0, 5, whole.batches_per_epoch + 1):
    for sampler in ("batch", "random_batch"):
      parts = [getattr(shard, sampler)(step) for shard in shards]
      assert parts[0][0].shape == (3, 16)
      for k in (0, 1):
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]),
                                      getattr(whole, sampler)(step)[k])
  with pytest.raises(ValueError, match="shard 0 of 5 with batch_size 12"):
    windows.Windows(ids, 16, 3, 12, shard_index=0, shard_count=5)


def test_random_batches_shift_by_one_and_stay_in_range():
  ids = np.arange(100)
  w = windows.Windows(ids, 10, 1, 64, seed=0)
  x, y = w.random_batch(0)
  np.testing.assert_array_equal(y, x + 1)
  assert x.min() >= 0 and y.max() <= 99
  assert not np.array_equal(x, w.random_batch(1)[0])


def test_too_little_text_for_one_batch_is_a_clear_error():
  with pytest.raises(ValueError, match="fewer than one batch"):
    windows.Windows(np.arange(20), context_length=16, stride=1, batch_size=8)
  with pytest.raises(ValueError, match=r"shape \(2, 50\); expected a 1-D array"):
    windows.Windows(np.zeros((2, 50)), 8, 1, 2)
  x, y = windows.Windows(list(range(50)), 8, 1, 2).batch(0)  # a list works too
  np.testing.assert_array_equal(y, x + 1)
  with pytest.raises(ValueError, match="stride=0"):
    windows.Windows(np.arange(100), 8, 0, 2)
