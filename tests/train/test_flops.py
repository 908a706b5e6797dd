"""MFU: the matmul peak is 2 n^3 FLOPs over the median time, and MFU achieved over peak."""

import types

import pytest

from research.train import flops


def test_matmul_peak_is_2n3_over_the_median_time(monkeypatch):
  # the clock read before and after each of 3 timed matmuls: they take 1, 2 and 6 s
  ticks = iter([0.0, 1.0, 10.0, 12.0, 20.0, 26.0])
  monkeypatch.setattr(flops, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
  measure = flops.measure_matmul_peak.__wrapped__  # past the cache
  assert measure(size=8, repeats=3) == 2 * 8 ** 3 / 2.0  # the median, not the mean (3 s)


def test_mfu_is_achieved_over_peak():
  # 6 N FLOPs a token for N = 1e6 parameters, at 1e3 tokens/s on a 1.2e10 FLOP/s machine
  assert flops.mfu(6e6, 1e3, 1.2e10) == pytest.approx(0.5)
