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
  quick = bool(options.pop("quick", False))
  config.seed = 0                 # the key every random choice derives from
  config.grid_points = 101 if quick else 1001  # x values where jax.grad meets 2x
  config.x_range = 3.0            # the grid spans [-x_range, x_range]
  config.steps = [10.0 ** -k for k in (1, 1.5, 2, 2.5, 3, 3.5)]  # finite-difference widths h
  config.point = 0.7              # where d/dx sin x = cos x is estimated
  return runs.override(config, options)
