"""Activations experiment: python -m experiments.activations [--config=...activations.py:quick]."""

from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import activations
from research import tour

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "activations.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/activations", "Where results are written.")


def main(argv):
  del argv
  tour.run_and_print(activations.run_experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
