"""Backprop experiment: python -m experiments.backprop [--config=...backprop.py:quick]."""

from experiments import script
from experiments.chapters import backprop

if __name__ == "__main__":
  script.run_chapter(backprop.run_experiment, "backprop")
