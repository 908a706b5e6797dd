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
  config.seed = 0

  # 1. The worked example: y = w_hat*x + b through three points, L(b) = 1/2 sum e^2.
  config.worked = ml_collections.ConfigDict(dict(
      x=[1.0, 2.0, 3.0], y=[3.0, 5.5, 6.5], w_hat=2.0, b0=-3.0, learning_rate=0.1, steps=60))

  # 2. The ravine: L = 1/2 (c_x x^2 + c_y y^2) with c_y >> c_x, and Rosenbrock.
  config.ravine = ml_collections.ConfigDict(dict(
      curvatures=[1.0, 50.0], start=[-8.0, 1.0], steps=120,
      gd_rate=0.036,  # eps*c_y = 1.8: GD overshoots the steep walls every step
      momentum=0.9,  # the notebook's a; momentum runs at eps*(1-a), the same flat-direction pace
      adagrad_rate=1.0, rmsprop_rate=0.1, adam_rate=0.3,
      rosenbrock_start=[-1.5, 2.0], rosenbrock_steps=1500 if quick else 3000,
      rosenbrock_gd_rate=1e-3, rosenbrock_adagrad_rate=0.3, rosenbrock_rmsprop_rate=3e-3,
      rosenbrock_adam_rate=0.02))

  # 3. Learning-rate decay on a noisy regression, far from the optimum at the start.
  config.decay = ml_collections.ConfigDict(dict(
      num_samples=4000 if quick else 10000, dim=20, noise=0.5, weight_scale=3.0, condition=10.0,
      batch_size=16, steps=1000 if quick else 3000,
      rates=[0.003, 0.01, 0.03, 0.1, 0.3, 1.0],  # every method gets its best rate from this grid
      gamma=0.5))  # step decay: eps x gamma every steps/5 steps

  # 4. Full-batch GD vs minibatch SGD: loss against wall time and step memory.
  config.minibatch = ml_collections.ConfigDict(dict(
      num_samples=100_000 if quick else 1_000_000, dim=20, noise=0.5, condition=100.0,
      batch_size=256, steps_per_call=50,
      gd_rate=0.9, sgd_rate=0.3,
      seconds=2.0 if quick else 15.0,  # wall-time budget per method, evaluation excluded
      target=0.01))  # "reached" = loss within 1% of the closed-form optimum
  config.update_from_flattened_dict(options)
  return config
