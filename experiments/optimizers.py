"""Gradient descent chapter: python -m experiments.optimizers [--config=...:quick].

Runs the four experiments (worked example, ravine, learning-rate decay, GD vs SGD), writes their
figures, config.json and metrics.jsonl to --workdir and prints each claim with its verdict.
"""

from experiments import script
from experiments.chapters import optimizers

if __name__ == "__main__":
  script.run_chapter(optimizers.run_experiment, "optimizers")
