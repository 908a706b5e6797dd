"""MFU: the matmul peak is the best size's 2 n^3 FLOPs over its median time, measured once per
machine (kept in the cache under the machine, JAX and the dtype), and MFU achieved over peak."""

import json

import jax
import pytest

from research.train import flops


def test_matmul_peak_is_the_best_sizes_2n3_over_its_median_time():
  # the clock read before and after each timed matmul: size 8 takes 1, 2 and 6 s (median 2),
  # size 16 takes 4, 4 and 100 s (median 4): 2*8^3/2 = 512 vs 2*16^3/4 = 2048 FLOP/s
  durations = iter([1.0, 2.0, 6.0, 4.0, 4.0, 100.0])
  clock = {"now": 0.0, "started": False}

  def timer():
    if clock["started"]:
      clock["now"] += next(durations)
    clock["started"] = not clock["started"]
    return clock["now"]

  assert flops.measure_matmul_peak(sizes=(8, 16), repeats=3, timer=timer) == 2 * 16 ** 3 / 4.0


def test_the_peak_is_measured_once_per_machine_and_named_with_it(tmp_path):
  measured = []

  def measure(dtype):
    measured.append(dtype)
    return 1.05e11

  path = tmp_path / "peak.json"
  first = flops.machine_peak.__wrapped__("float32", path, measure)  # past the in-process cache
  again = flops.machine_peak.__wrapped__("float32", path, lambda dtype: 1.0)
  assert first == again == flops.Peak(1.05e11, flops.machine()) and measured == ["float32"]
  (key,) = json.loads(path.read_text())
  assert key.startswith(flops.machine()) and jax.__version__ in key and "float32" in key
  assert flops.machine().endswith(" cores")  # the tests run on CPU
  assert (flops.Peak(1.05e11, "AMD EPYC, 2 cores").describe(0.2345)
          == "MFU 23.4% of 105 GFLOP/s measured on AMD EPYC, 2 cores")
  path.write_text("{not json")  # a broken cache is measured again, not an error
  assert flops.machine_peak.__wrapped__("float32", path, measure).flops == 1.05e11
  assert len(measured) == 2


def test_mfu_is_achieved_over_peak():
  # 6 N FLOPs a token for N = 1e6 parameters, at 1e3 tokens/s on a 1.2e10 FLOP/s machine
  assert flops.mfu(6e6, 1e3, 1.2e10) == pytest.approx(0.5)
