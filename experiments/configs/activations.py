"""Activations: derivatives, vanishing gradients, dead ReLUs, non-zero mean, linear collapse.

COMMAND: python -m experiments.activations --config=experiments/configs/activations.py
RESULT:  sigmoid' max 0.2500; sigmoid's first-layer gradient at depth 64 underflows to 0 (float32)
         while ReLU (Kaiming) keeps 0.4 of depth 2's; 12% of ReLU units dead at lr 0.3, none for
         Leaky/PReLU;
         sigmoid inputs give one-signed weight gradients in 100% of steps, tanh in 0%; a depth-8
         net without activations fits XOR no better than a linear model, tanh and ReLU reach 100%.
         About 70 s on a shared 2-core CPU.
Presets: `activations.py:quick` (fewer depths and steps, ~25 s).
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0                # the key every random choice derives from
  # 1. the activations and their derivatives, plotted on a grid
  config.grid_points = 201 if quick else 1001  # x values plotted
  config.x_range = 6.0           # the grid spans [-x_range, x_range]
  # 2. vanishing gradients: first-layer gradient norm at init, vs depth
  config.vanish_depths = [2, 32] if quick else [2, 4, 8, 16, 32, 64]  # layers of each net
  config.vanish_seeds = 2 if quick else 4   # initialisations averaged per depth
  config.vanish_width = 64       # units per layer
  # 3. dead ReLUs at a high learning rate
  config.dead_learning_rate = 0.3   # high enough to push units into the dead zone
  config.dead_steps_per_check = 40  # SGD steps between two counts of dead units
  config.dead_checks = 4 if quick else 8  # counts taken
  config.dead_width = 64         # units per layer
  config.dead_depth = 4          # hidden layers
  config.dead_seeds = 4          # nets trained, dead fractions averaged
  # 4. non-zero mean: single-example SGD steps
  config.sign_steps = 50 if quick else 300  # steps whose weight-gradient signs are counted
  config.sign_learning_rate = 0.05  # eps of those steps
  config.sign_width = 32         # inputs of the layer whose gradients are looked at
  # 5. linear collapse on XOR
  config.xor_points = 200        # noisy XOR samples
  config.xor_noise = 0.15        # std of the noise around the four corners
  config.xor_depth = 8           # layers of each net (with and without activations)
  config.xor_width = 16          # units per layer
  config.xor_steps = 300         # full-batch training steps
  config.xor_learning_rate = 0.03  # eps of every net
  return runs.override(config, options)
