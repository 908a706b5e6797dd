"""The chapter's four experiments run end to end on a tiny config and write their figures."""

import pytest

from experiments.chapters import optimizers
from experiments.configs import optimizers as optimizers_config


@pytest.mark.slow
def test_the_four_experiments_run_and_write_figures(tmp_path):
  config = optimizers_config.get_config(
      "quick,ravine.steps=20,ravine.rosenbrock_steps=50,decay.num_samples=500,decay.steps=100,"
      "minibatch.num_samples=5000,minibatch.seconds=0.05,worked.steps=60")
  claims = optimizers.run_experiment(config, tmp_path)
  assert len(claims) == 10
  assert claims[0].holds, claims[0].measured  # GD lands on b* whatever the other sizes
  for name in ("worked_example.png", "ravine.png", "lr_decay.png", "gd_vs_sgd.png"):
    assert (tmp_path / name).stat().st_size > 0
  assert {c.figure for c in claims} == {"worked_example.png", "ravine.png", "lr_decay.png",
                                        "gd_vs_sgd.png"}
