"""Backprop experiment: python -m experiments.backprop [--config=...backprop.py:quick]."""

from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import backprop
from research import tour

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "backprop.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/backprop", "Where results are written.")


def main(argv):
  del argv
  tour.run_and_print(backprop.run_experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
