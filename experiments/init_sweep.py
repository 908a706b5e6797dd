"""Initialisation sweep: python -m experiments.init_sweep
  [--config=experiments/configs/init_sweep.py:inits=xavier+kaiming,depths=4+32]
  [--config=experiments/configs/init_sweep.py:benchmark,depths=8]  (vmapped vs Python loop)."""

import json
from pathlib import Path

from absl import flags

from experiments import script
from experiments.chapters import initialization
from research import tour

_CONFIG = script.config_flag("init_sweep")
_WORKDIR = flags.DEFINE_string("workdir", "runs/init_sweep", "Where results are written.")


def main(argv):
  del argv
  tour.run_and_print(initialization.run_experiment, _CONFIG.value, _WORKDIR.value)
  timings = json.loads((Path(_WORKDIR.value) / "timings.json").read_text())
  print("timings:", timings)
  if "loop_s" in timings:
    for loop in ("loop", "step_loop"):
      print(f"{loop} / vmapped: compile included {timings[loop + '_s'] / timings['vmapped_s']:.2f}x,"
            f" warm {timings[loop + '_warm_s'] / timings['vmapped_warm_s']:.2f}x")


if __name__ == "__main__":
  script.run(main)
