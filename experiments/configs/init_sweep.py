"""Initialisation sweep: init x activation x depth x seed on digits, plus the symmetry check.

COMMAND: python -m experiments.init_sweep --config=experiments/configs/init_sweep.py
RESULT:  720 trials (5 inits x 6 activations x 6 depths x 4 seeds), one vmapped program per depth,
         ~3 min on a shared 2-core CPU. Kaiming keeps ReLU's activation std across 32 layers
         (last/first 0.52) while Xavier shrinks it (1e-5); N(0,1) saturates tanh (73% of units);
         Xavier lets tanh's std fall to 0.19 of layer 1 by layer 32 (the notebook's [0.5, 2] does
         not hold); zero init stays at chance; Kaiming + ReLU at depth 2 reaches 0.96 accuracy.
         Constant init leaves every unit of a layer identical (max difference exactly 0).
Subsets:  `init_sweep.py:inits=xavier+kaiming,activations=tanh+relu,depths=4+32`
Presets:  `init_sweep.py:quick` (3 inits x 2 activations x depths 4, 32; ~25 s);
          `init_sweep.py:benchmark` also runs the same trials one by one in a Python loop and
          writes the timings (benchmark.json) for BENCHMARKS.md.
Per-layer statistics at init are measured on nets of width `stats_width` (64: at width 32 the
finite-width drift of a ReLU net's std is as large as the effect), accuracy on width `width`.
"""

import ml_collections

from research import runs
from research.sweeps import init_sweep


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  options = runs.parse_config_arg(arg)
  quick = bool(options.pop("quick", False))
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.inits = ["normal", "xavier", "kaiming"] if quick else list(init_sweep.INITS)
  config.activations = ["tanh", "relu"] if quick else list(init_sweep.ACTIVATIONS)
  config.depths = [4, 32] if quick else list(init_sweep.DEPTHS)
  config.seeds = 4
  config.width = 32
  config.steps = 150
  config.batch_size = 64
  config.learning_rate = 0.02
  config.stats_width = 64
  config.stats_batch = 256
  config.verdict_depth = 32  # the depth the std verdicts are read at
  config.benchmark = bool(options.pop("benchmark", False))
  config.benchmark_repeats = 3  # warm runs of each way, interleaved; the median is reported
  # symmetry: constant vs random init, trained the same way
  config.symmetry_constant = 0.1
  config.symmetry_width = 16
  config.symmetry_depth = 3
  config.symmetry_steps = 100
  for key in ("inits", "activations", "depths"):
    if key in options and not isinstance(options[key], list):
      options[key] = [options[key]]
  config.update(options)
  return config
