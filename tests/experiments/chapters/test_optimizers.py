"""The gradient descent chapter on a small config: every claim's verdict and key figure.

Golden figures come from this config (deterministic, except the wall-time race); after a
change that moves them on purpose, rerun the chapter with CONFIG and copy the new figures.
"""

import pytest

from experiments.chapters import optimizers
from experiments.configs import optimizers as optimizers_config
from tests.experiments.chapters.figures import figures

pytestmark = pytest.mark.slow  # the chapter runs once per module

CONFIG = ("quick,ravine.rosenbrock_steps=50,decay.num_samples=500,decay.steps=100,"
          "minibatch.num_samples=100000,minibatch.seconds=0.3")
FIGURES = {"worked_example.png", "ravine.png", "lr_decay.png", "gd_vs_sgd.png"}


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
  out = tmp_path_factory.mktemp("optimizers")
  return optimizers.run_experiment(optimizers_config.get_config(CONFIG), out), out


def test_every_claim_holds_and_points_at_its_figure(chapter):
  claims, out = chapter
  assert len(claims) == 10
  assert [c for c in claims if not c.holds] == []
  assert {c.figure for c in claims} == FIGURES
  for name in FIGURES:
    assert (out / name).stat().st_size > 0


def test_worked_example_lands_on_the_closed_form(chapter):
  b, b_star, _ = figures(chapter[0][0])
  assert b_star == 1.0 and b == pytest.approx(1.0, abs=1e-6)


def test_ravine(chapter):
  damped, same_path, lower = chapter[0][1:4]
  assert figures(damped) == [17, 120, pytest.approx(0.14)]  # sign changes: momentum / GD
  assert figures(same_path)[0] < 1e-6  # notebook momentum vs optax trace: float32 rounding
  assert figures(lower)[0] == pytest.approx(0.0729, rel=0.02)  # final loss momentum / GD


def test_learning_rate_decay(chapter):
  adagrad_falls, adagrad_early, rmsprop_flat, step_decay = chapter[0][4:8]
  assert figures(adagrad_falls)[0] == pytest.approx(0.331, rel=0.02)  # end / t=1
  assert figures(adagrad_early)[0] == pytest.approx(0.89, rel=0.02)  # share of the fall by t/10
  assert figures(rmsprop_flat)[0] == pytest.approx(2.98, rel=0.02)  # end / t=1
  assert figures(step_decay)[0] == pytest.approx(0.0976, rel=0.02)  # excess loss, decay / const


def test_minibatch_sgd_beats_full_batch_gd(chapter):
  sooner, memory = chapter[0][8:10]
  # Wall time on a shared machine: only the verdict and a margin (about 9x here, 25x in full).
  assert figures(sooner)[0] >= 1.5
  # XLA's peak step memory: GD holds all 10^5 rows, SGD one 256-row batch.
  assert figures(memory)[0] == pytest.approx(418, rel=0.05)
