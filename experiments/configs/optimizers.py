"""Gradient descent chapter: the worked example, the ravine, learning-rate decay, GD vs SGD.

COMMAND: python -m experiments.optimizers --config=experiments/configs/optimizers.py
RESULT:  worked example b = b* = 1.0 to 1e-7; on the ravine momentum cuts the sign changes of
         the steep coordinate from 120 to 17 and ends 14x lower; AdaGrad's effective rate ends
         at 0.06 of its start, 97% of that fall in the first tenth, while RMSProp's rises 3x;
         on 10^6 samples minibatch SGD gets within 1% of the optimal loss ~25x sooner than
         full-batch GD, with ~4000x less memory per step. About 1 min on a 2-core CPU.
Presets: `optimizers.py:quick` (fewer steps, 10^5 samples; < 30 s). Nested fields take dots:
`optimizers.py:quick,minibatch.num_samples=200000,decay.batch_size=32`.
"""

import ml_collections

from research import runs


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0  # the key every random choice derives from

  # 1. The worked example: y = w_hat*x + b through three points, L(b) = 1/2 sum e^2.
  config.worked = worked = ml_collections.ConfigDict()  # 1.
  worked.x = [1.0, 2.0, 3.0]   # the three inputs
  worked.y = [3.0, 5.5, 6.5]   # their targets
  worked.w_hat = 2.0           # the slope, held fixed: only b is learned
  worked.b0 = -3.0             # b's start
  worked.learning_rate = 0.1   # eps
  worked.steps = 60            # GD steps

  # 2. The ravine: L = 1/2 (c_x x^2 + c_y y^2) with c_y >> c_x, and Rosenbrock.
  config.ravine = ravine = ml_collections.ConfigDict()  # 2.
  ravine.curvatures = [1.0, 50.0]  # c_x, c_y
  ravine.start = [-8.0, 1.0]       # (x, y) every method starts at
  ravine.steps = 120               # steps on the ravine
  ravine.gd_rate = 0.036  # eps*c_y = 1.8: GD overshoots the steep walls every step
  ravine.momentum = 0.9  # the notebook's a; momentum runs at eps*(1-a): the same flat pace
  ravine.adagrad_rate = 1.0        # each method's eps on the ravine
  ravine.rmsprop_rate = 0.1        # (the same)
  ravine.adam_rate = 0.3           # (the same)
  ravine.rosenbrock_start = [-1.5, 2.0]  # the start on Rosenbrock's valley
  ravine.rosenbrock_steps = 1500 if quick else 3000  # steps on Rosenbrock
  ravine.rosenbrock_gd_rate = 1e-3       # each method's eps on Rosenbrock
  ravine.rosenbrock_adagrad_rate = 0.3   # (the same)
  ravine.rosenbrock_rmsprop_rate = 3e-3  # (the same)
  ravine.rosenbrock_adam_rate = 0.02     # (the same)

  # 3. Learning-rate decay on a noisy regression, far from the optimum at the start.
  config.decay = decay = ml_collections.ConfigDict()  # 3.
  decay.num_samples = 4000 if quick else 10000  # regression rows
  decay.dim = 20                  # features
  decay.noise = 0.5               # std of the label noise
  decay.weight_scale = 3.0        # std of the true weights: the start w = 0 is far off
  decay.condition = 10.0          # ratio of the largest to the smallest feature scale
  decay.batch_size = 16           # rows per SGD step
  decay.steps = 1000 if quick else 3000  # SGD steps of each method and rate
  decay.rates = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]  # every method gets its best rate from this grid
  decay.gamma = 0.5  # step decay: eps x gamma every steps/5 steps

  # 4. Full-batch GD vs minibatch SGD: loss against wall time and step memory.
  config.minibatch = minibatch = ml_collections.ConfigDict()  # 4.
  minibatch.num_samples = 100_000 if quick else 1_000_000  # regression rows
  minibatch.dim = 20              # features
  minibatch.noise = 0.5           # std of the label noise
  minibatch.condition = 100.0     # ratio of the largest to the smallest feature scale
  minibatch.batch_size = 256      # SGD's m
  minibatch.steps_per_call = 50   # SGD steps per jitted call, between two clock readings
  minibatch.gd_rate = 0.9         # full-batch GD's eps
  minibatch.sgd_rate = 0.3        # minibatch SGD's eps
  minibatch.seconds = 2.0 if quick else 15.0  # wall-time budget per method, evaluation excluded
  minibatch.target = 0.01  # "reached" = loss within 1% of the closed-form optimum
  return runs.override(config, options)
