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
  config.seed = 0
  config.grid_points = 201 if quick else 1001
  config.x_range = 6.0
  # 2. vanishing gradients: first-layer gradient norm at init, vs depth
  config.vanish_depths = [2, 32] if quick else [2, 4, 8, 16, 32, 64]
  config.vanish_seeds = 2 if quick else 4
  config.vanish_width = 64
  # 3. dead ReLUs at a high learning rate
  config.dead_learning_rate = 0.3
  config.dead_steps_per_check = 40
  config.dead_checks = 4 if quick else 8
  config.dead_width = 64
  config.dead_depth = 4
  config.dead_seeds = 4
  # 4. non-zero mean: single-example SGD steps
  config.sign_steps = 50 if quick else 300
  config.sign_learning_rate = 0.05
  config.sign_width = 32
  # 5. linear collapse on XOR
  config.xor_points = 200
  config.xor_noise = 0.15
  config.xor_depth = 8
  config.xor_width = 16
  config.xor_steps = 300
  config.xor_learning_rate = 0.03
  config.update(options)
  return config
