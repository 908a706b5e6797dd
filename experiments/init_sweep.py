"""Initialisation sweep: python -m experiments.init_sweep
  [--config=experiments/configs/init_sweep.py:inits=xavier+kaiming,depths=4+32]
  [--config=experiments/configs/init_sweep.py:benchmark,depths=8]  (vmapped vs Python loop)."""

import json
from pathlib import Path

from absl import app
from absl import flags
from ml_collections import config_flags

from experiments.chapters import initialization
from research import runs

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "init_sweep.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/init_sweep", "Where results are written.")


def main(argv):
  del argv
  config = _CONFIG.value
  runs.seed_everything(config.seed)
  with runs.Run(_WORKDIR.value, config) as run:
    claims = initialization.run_experiment(config, run.dir)
    for step, claim in enumerate(claims):
      run.log(step, holds=float(claim.holds))
      print(f"{claim.statement} — measured {claim.measured} — {claim.verdict}")
    timings = json.loads((run.dir / "timings.json").read_text())
    print("timings:", timings)
    if "loop_s" in timings:
      for loop in ("loop", "step_loop"):
        print(f"{loop} / vmapped: compile included {timings[loop + '_s'] / timings['vmapped_s']:.2f}x,"
              f" warm {timings[loop + '_warm_s'] / timings['vmapped_warm_s']:.2f}x")


if __name__ == "__main__":
  app.run(main)
