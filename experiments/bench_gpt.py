"""Times the jitted train step of the shakespeare_char model under kernels="fused" (ours, the
default) against kernels="notebook" (the textbook forms of research/nn), interleaved in one
process (no data loading, no eval).

  python -m experiments.bench_gpt [--steps=300] [--rounds=10]
      [--config=experiments/configs/shakespeare_char.py]

"plain" is the notebook form: Linear layers on B x L x D (two contracting axes in the weight
gradient), autodiff of exact GELU, of LayerNorm and of the where + softmax mask and attention;
"ours" swaps in research.nn.fused's twins. Both keep freed heap mapped
(research.nn.fused.retain_freed_memory). Prints median ms per step of each, their ratio, the
measured fp32 matmul peak, the MFU and the load average: on a shared machine a figure means
little without it.
"""

import os
import statistics
import time
from pathlib import Path

from absl import flags
from ml_collections import config_flags

from experiments import script

_CONFIG = config_flags.DEFINE_config_file(
    "config", str(Path(__file__).parent / "configs" / "shakespeare_char.py"), "Model config.")
_STEPS = flags.DEFINE_integer("steps", 300, "Timed steps per variant (after 5 warm-up steps).")
_ROUNDS = flags.DEFINE_integer("rounds", 10, "Alternations between the variants.")


def main(argv):
  del argv
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from flax import nnx  # pylint: disable=g-import-not-at-top
  from research.nn import count  # pylint: disable=g-import-not-at-top
  from research.nn import transformer  # pylint: disable=g-import-not-at-top
  from research.train import flops  # pylint: disable=g-import-not-at-top
  from research.nn import fused  # pylint: disable=g-import-not-at-top
  from research.train import lm  # pylint: disable=g-import-not-at-top
  from research.train import state as state_lib  # pylint: disable=g-import-not-at-top
  from research.train import step as step_lib  # pylint: disable=g-import-not-at-top

  fused.retain_freed_memory()
  config = _CONFIG.value
  model_config = lm.model_config_for(config, 65)
  tx = state_lib.make_optimizer(config)
  rng = np.random.default_rng(0)
  shape = (1, config.batch_size, config.context_length)
  batches = [{"inputs": rng.integers(0, 65, shape).astype(np.int32),
              "targets": rng.integers(0, 65, shape).astype(np.int32)} for _ in range(8)]

  def build(kernels):
    parts, state = state_lib.create(transformer.Transformer(
        model_config.replace(kernels=kernels), rngs=nnx.Rngs(config.seed)), tx)
    train_step = step_lib.make_train_step(parts.graphdef, tx, dtype=config.dtype,
                                          seed=config.seed, dropout=model_config.dropout > 0)
    for i in range(5):  # compiles and warms up
      state, metrics = train_step(state, batches[i % len(batches)])
      float(metrics["loss"])
    return [train_step, state]

  variants = {"ours": build("fused"), "plain": build("notebook")}
  times = {name: [] for name in variants}
  per_round = max(1, _STEPS.value // _ROUNDS.value)
  for _ in range(_ROUNDS.value):
    for name, entry in variants.items():
      for i in range(per_round):
        tick = time.perf_counter()
        entry[1], metrics = entry[0](entry[1], batches[i % len(batches)])
        float(metrics["loss"])
        times[name].append(time.perf_counter() - tick)
  peak = flops.machine_peak()
  tokens = config.batch_size * config.context_length
  flops_per_token = count.flops_per_token(model_config, config.context_length)
  print(f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r} load={os.getloadavg()[0]:.2f} "
        f"peak_gflops={peak.flops / 1e9:.0f} (measured on {peak.machine})")
  medians = {name: statistics.median(t) for name, t in times.items()}
  for name, median in medians.items():
    mfu = flops.mfu(flops_per_token, tokens / median, peak.flops)
    print(f"{name:6s} ms_per_iter median={1000 * median:.2f} "
          f"p10={1000 * np.percentile(times[name], 10):.2f} tokens_per_s={tokens / median:.0f} "
          f"mfu={100 * mfu:.1f}%")
  print(f"plain/ours={medians['plain'] / medians['ours']:.2f}x")


if __name__ == "__main__":
  script.run(main)
