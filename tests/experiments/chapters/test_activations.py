"""The activations chapter on a small config: every claim's verdict and key figure.

Golden figures come from CONFIG (deterministic on CPU); after a change that moves them on
purpose, rerun the chapter with CONFIG and copy the new figures.
"""

import pytest

from experiments.chapters import activations
from experiments.configs import activations as activations_config
from tests.experiments.chapters.figures import figures

pytestmark = pytest.mark.slow  # the chapter runs once per module

# Depth 12 is enough for sigmoid's gradient to vanish (ratio 5e-7 against the 1e-3 bar); a
# depth-3 net fits XOR; ten single-example steps show the sign agreement.
CONFIG = "quick,vanish_depths=2+12,vanish_seeds=1,sign_steps=10,xor_steps=200,xor_depth=3"
FIGURES = ("activations", "vanishing", "dead_units", "sign_agreement", "xor")


@pytest.fixture(scope="module")
def chapter(tmp_path_factory):
  out = tmp_path_factory.mktemp("activations")
  return activations.run_experiment(activations_config.get_config(CONFIG), out), out


def test_every_claim_holds_and_every_figure_is_written(chapter):
  claims, out = chapter
  assert len(claims) == 11
  assert [c for c in claims if not c.holds] == []
  for name in FIGURES:
    assert (out / f"{name}.png").stat().st_size > 0
  assert {c.figure for c in claims} == {f"{name}.png" for name in FIGURES}


def test_derivative_maxima(chapter):
  sigmoid, tanh = chapter[0][:2]
  assert figures(sigmoid)[0] == pytest.approx(0.25, abs=1e-6)
  assert figures(tanh)[0] == pytest.approx(1.0, abs=1e-6)


def test_vanishing_gradients(chapter):
  sigmoid, relu = chapter[0][2:4]
  assert figures(sigmoid)[-1] < 1e-5  # depth 12 / depth 2: 4.9e-7
  assert figures(relu)[-1] == pytest.approx(0.356, rel=0.02)  # Kaiming keeps it within 10x


def test_dead_units(chapter):
  relu_dies, others_live = chapter[0][4:6]
  assert figures(relu_dies)[0] == pytest.approx(0.129, abs=0.005)
  relu, margin = figures(others_live)
  assert relu == pytest.approx(0.129, abs=0.005) and margin == relu  # Leaky, PReLU: none dead


def test_sign_agreement(chapter):
  sigmoid, tanh = chapter[0][6:8]
  assert figures(sigmoid) == [1.0] and figures(tanh) == [0.0]


def test_linear_collapse_and_xor(chapter):
  collapse, no_better, fits = chapter[0][8:11]
  assert figures(collapse)[0] < 1e-5  # float32 rounding of one product of matrices: 3e-7
  identity, linear, gap = figures(no_better)
  assert identity == linear == pytest.approx(0.325) and gap == 0.0
  assert figures(fits) == [1.0]
