"""Warm-up: jax.grad against the hand derivative and against finite differences.

COMMAND: python -m experiments.warmup --config=experiments/configs/warmup.py
RESULT:  max |jax.grad - 2x| = 0; central difference order ~2.00, forward ~1.00; < 5 s on 2 CPUs.
Presets: `warmup.py:quick` uses fewer grid points.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.grid_points = 101 if options.get("quick") else 1001
  config.x_range = 3.0
  config.steps = [10.0 ** -k for k in (1, 1.5, 2, 2.5, 3, 3.5)]
  config.point = 0.7
  options.pop("quick", None)
  return runs.override(config, options)
