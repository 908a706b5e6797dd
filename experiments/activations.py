"""Activations experiment: python -m experiments.activations [--config=...activations.py:quick]."""

from experiments import script
from experiments.chapters import activations

if __name__ == "__main__":
  script.run_chapter(activations.run_experiment, "activations")
