"""Backprop experiment: python -m experiments.backprop [--config=...backprop.py:quick]."""

from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import backprop
from research import runs

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "backprop.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/backprop", "Where results are written.")


def main(argv):
  del argv
  config = _CONFIG.value
  runs.seed_everything(config.seed)
  with runs.Run(_WORKDIR.value, config) as run:
    claims = backprop.run_experiment(config, run.dir)
    for step, claim in enumerate(claims):
      run.log(step, holds=float(claim.holds))
      print(f"{claim.statement} — measured {claim.measured} — {claim.verdict}")


if __name__ == "__main__":
  app.run(main)
