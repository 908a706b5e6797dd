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
  config.seed = 0            # the key every random choice derives from
  config.inits = ["normal", "xavier", "kaiming"] if quick else list(init_sweep.INITS)  # schemes
  config.activations = ["tanh", "relu"] if quick else list(init_sweep.ACTIVATIONS)  # per init
  config.depths = [4, 32] if quick else list(init_sweep.DEPTHS)  # hidden layers per net
  config.seeds = 4           # trials per (init, activation, depth)
  config.width = 32          # units per layer of the nets whose accuracy is measured
  config.steps = 150         # SGD steps of each trial
  config.batch_size = 64     # digits per step
  config.learning_rate = 0.02  # eps of every trial
  config.stats_width = 64    # units per layer of the nets whose activation stats are measured
  config.stats_batch = 256   # digits those statistics are taken on
  config.verdict_depth = 32  # the depth the std verdicts are read at
  config.benchmark = bool(options.pop("benchmark", False))  # also time a Python loop of trials
  config.benchmark_repeats = 3  # warm runs of each way, interleaved; the median is reported
  # symmetry: constant vs random init, trained the same way
  config.symmetry_constant = 0.1  # the value every weight starts at
  config.symmetry_width = 16      # units per layer
  config.symmetry_depth = 3       # hidden layers
  config.symmetry_steps = 100     # training steps before the units are compared
  for key in ("inits", "activations", "depths"):
    if key in options and not isinstance(options[key], list):
      options[key] = [options[key]]
  return runs.override(config, options, presets=("quick", "benchmark"))
