"""The backprop, activations and initialisation chapters run end to end on tiny configs."""

import pytest

from experiments.chapters import activations
from experiments.chapters import backprop
from experiments.chapters import initialization
from experiments.configs import activations as activations_config
from experiments.configs import backprop as backprop_config
from experiments.configs import init_sweep as init_sweep_config


def test_backprop_chapter_reproduces_the_notebook(tmp_path):
  claims = backprop.run_experiment(backprop_config.get_config("quick"), tmp_path)
  assert all(c.holds for c in claims), [c for c in claims if not c.holds]
  assert "y 1.4, L 0.18, dL/dy 0.6, dL/dw 0.9, dL/db 0.6" in claims[0].measured
  assert (tmp_path / "worked_example.png").exists() and (tmp_path / "worked_example.dot").exists()


@pytest.mark.slow
def test_activations_chapter_runs(tmp_path):
  config = activations_config.get_config(
      "quick,vanish_depths=2+4,vanish_seeds=1,dead_checks=1,dead_seeds=1,sign_steps=10,"
      "xor_steps=200,xor_depth=3")
  claims = {c.statement.split(":")[0]: c for c in activations.run_experiment(config, tmp_path)}
  assert len(claims) == 11
  assert claims["sigmoid'(x) is at most 1/4, reached at x = 0"].holds
  for name in ("activations", "vanishing", "dead_units", "sign_agreement", "xor"):
    assert (tmp_path / f"{name}.png").exists()


@pytest.mark.slow
def test_initialization_chapter_runs_a_subset(tmp_path):
  config = init_sweep_config.get_config(
      "inits=zeros+xavier+kaiming,activations=relu,depths=2,seeds=2,steps=5,stats_width=16")
  claims = initialization.run_experiment(config, tmp_path)
  assert all(c.holds for c in claims[:4]), claims[:4]  # the symmetry claims
  lines = (tmp_path / "init_sweep.csv").read_text().splitlines()
  assert len(lines) == 1 + 3 * 1 * 1 * 2
  for name in ("accuracy_heatmap", "std_ratio_heatmap", "std_curves"):
    assert (tmp_path / f"{name}.png").exists()
