"""The backprop chapter on its quick config: every claim, the worked example's numbers."""

from experiments.chapters import backprop
from experiments.configs import backprop as backprop_config


def test_backprop_chapter_reproduces_the_notebook(tmp_path):
  claims = backprop.run_experiment(backprop_config.get_config("quick"), tmp_path)
  assert all(c.holds for c in claims), [c for c in claims if not c.holds]
  assert "y 1.4, L 0.18, dL/dy 0.6, dL/dw 0.9, dL/db 0.6" in claims[0].measured
  assert (tmp_path / "worked_example.png").exists() and (tmp_path / "worked_example.dot").exists()
