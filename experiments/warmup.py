"""Warm-up experiment: python -m experiments.warmup [--config.grid_points=11]."""

from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import warmup
from research import tour

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "warmup.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/warmup", "Where results are written.")


def main(argv):
  del argv
  tour.run_and_print(warmup.run_experiment, _CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
