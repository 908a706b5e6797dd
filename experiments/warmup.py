"""Warm-up experiment: python -m experiments.warmup [--config.grid_points=11]."""

from experiments import script
from experiments.chapters import warmup

if __name__ == "__main__":
  script.run_chapter(warmup.run_experiment, "warmup")
