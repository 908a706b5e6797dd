"""Backprop: the notebook's worked example, a two-layer chain, and the engine against jax.grad.

COMMAND: python -m experiments.backprop --config=experiments/configs/backprop.py
RESULT:  y = 1.4, L = 0.18, dL/dy = 0.6, dL/dw = 0.9, dL/db = 0.6 exactly (to 1e-12); every node's
         backward runs once; engine and custom_vjp ops equal jax.grad to ~1e-15 in float64; < 10 s.
Presets: `backprop.py:quick` (a smaller network for the jax.grad comparison).
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0           # the key every random choice derives from
  # the notebook's worked example: y = w x + b, L = (y - y_gt)^2 / 2
  config.x = 1.5            # the input
  config.w = 0.8            # the weight
  config.b = 0.2            # the bias
  config.y_gt = 0.8         # the target y should reach
  # the two-linear-layer chain
  config.chain_in = 3       # input width
  config.chain_hidden = 4   # width between the two layers
  config.chain_out = 2      # output width
  # the engine against jax.grad: an MLP using every op
  config.batch = 8 if quick else 64                          # rows of the random input
  config.widths = [6, 8, 3] if quick else [16, 32, 32, 4]    # layer widths, input first
  return runs.override(config, options)
