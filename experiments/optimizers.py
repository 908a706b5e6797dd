"""Gradient descent chapter: python -m experiments.optimizers [--config=...:quick].

Runs the four experiments (worked example, ravine, learning-rate decay, GD vs SGD), writes their
figures, config.json and metrics.jsonl to --workdir and prints each claim with its verdict.
"""

from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import optimizers
from research import tour

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "optimizers.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/optimizers", "Where results are written.")


def main(argv):
  del argv
  tour.run_and_print(optimizers.run_experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
