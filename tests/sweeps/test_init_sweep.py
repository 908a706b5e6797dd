import jax
import numpy as np
import pytest

from research.sweeps import mlp
from research.sweeps import digits
from research.sweeps import init_sweep


@pytest.fixture(scope="module")
def data():
  return digits.load()


def test_grid_and_bad_names():
  trials = init_sweep.grid(["xavier", "kaiming"], ["tanh", "relu", "prelu"], [2, 4], range(4))
  assert len(trials) == 2 * 3 * 2 * 4
  with pytest.raises(ValueError, match="unknown initialiser"):
    init_sweep.grid(["glorot"], ["tanh"], [2], [0])
  with pytest.raises(ValueError, match="unknown activations"):
    init_sweep.grid(["xavier"], ["swish"], [2], [0])


def test_vmapped_sweep_equals_the_loop(data):
  budget = init_sweep.Budget(width=8, steps=5, batch_size=16, learning_rate=0.05)
  trials = init_sweep.grid(["xavier", "kaiming"], ["tanh", "prelu"], [2], [0, 1])
  fast = init_sweep.run_vmapped(trials, data, budget, progress=False)
  slow = init_sweep.run_loop(trials, data, budget, progress=False)
  for a, b in zip(fast, slow):
    assert a["trial"] == b["trial"]
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(a["accuracy"], b["accuracy"], atol=1.5 / len(data[3]))


def test_init_stats_and_table(data):
  trials = init_sweep.grid(["xavier", "kaiming"], ["relu"], [6], [0])
  stats = init_sweep.run_init_stats(trials, data[0][:64], data[1][:64], width=16, progress=False)
  t = trials[1]
  params, _ = init_sweep.init_params(t, 16, 64, 10)
  want = jax.jit(mlp.init_stats, static_argnums=3)(params, data[0][:64], data[1][:64],
                                                    mlp.ACTIVATIONS.index("relu"))
  np.testing.assert_allclose(stats[1]["act_std"], want["act_std"], rtol=1e-5)
  np.testing.assert_allclose(stats[1]["grad_norm"], want["grad_norm"], rtol=1e-4)
  assert stats[0]["act_std"].shape == (6,)
  rows = init_sweep.merge([{"trial": tr, "accuracy": 0.5, "train_loss": 1.0} for tr in trials],
                          stats)
  header, lines = init_sweep.to_table(rows)
  assert header[:4] == ["init", "activation", "depth", "seed"] and len(lines) == 2
  assert len(lines[0][7].split()) == 6


def test_step_loop_equals_the_scanned_loop(data):
  budget = init_sweep.Budget(width=8, steps=4, batch_size=16, learning_rate=0.05)
  trials = init_sweep.grid(["kaiming"], ["relu"], [2], [0, 1])
  scanned = init_sweep.run_loop(trials, data, budget, progress=False)
  stepped = init_sweep.run_loop_steps(trials, data, budget, progress=False)
  for a, b in zip(scanned, stepped):
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
